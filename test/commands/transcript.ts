/**
 * Plays one QMP conversation against a server (qemu-storage-daemon or
 * livebackup daemon) and returns it normalised for comparison: every
 * reply in order, and every job's event sequence (status names and
 * BLOCK_JOB_* events with their data). Values that legitimately differ
 * (progress of a throttled job, automatic node names, host allocation)
 * become placeholders.
 */
import { QmpClient, type QmpObject } from '../helpers/qmp-client.js';
import { normalizeQmpMessage } from '../helpers/qsd.js';

/**
 * Send a command and record its reply, or wait until the `nth` (default 1)
 * event named `waitFor` (with that job `status` and job `id`, when given)
 * since the connection opened has arrived.
 */
export type ScenarioStep =
  | { readonly execute: string; readonly arguments?: unknown }
  | { readonly waitFor: string; readonly status?: string; readonly id?: string; readonly nth?: number };

export interface ScenarioTranscript {
  /** Replies in order, with the command that got them. */
  readonly replies: unknown[];
  /** Per job id: its events in order (status names for JOB_STATUS_CHANGE). */
  readonly jobs: Record<string, unknown[]>;
  /** Events not about a job (BLOCK_EXPORT_DELETED, ...), in order. */
  readonly other: unknown[];
}

const PLACEHOLDER_KEYS = new Set(['offset', 'current-progress', 'busy', 'actual-size']);

/**
 * Lists of block nodes sorted by content: QEMU's node list order follows
 * its internal graph list, which is not part of the interface.
 */
function sortNodeLists(message: unknown): unknown {
  const reply = message as { return?: unknown };
  if (Array.isArray(reply?.return) && reply.return.every((item) => typeof item === 'object' && item !== null && 'node-name' in item)) {
    const sorted = [...reply.return].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    return { ...reply, return: sorted };
  }
  return message;
}

/** The normalisation used for both sides. */
export function normalize(message: unknown): unknown {
  return sortNodeLists(normalizeQmpMessage(message, {
    placeholder: (value, key) => {
      if (key !== undefined && PLACEHOLDER_KEYS.has(key)) return `<${key}>`;
      if (typeof value === 'string' && /^#block\d+$/.test(value)) return '#block';
      return undefined;
    },
  }));
}

function jobOf(event: QmpObject): string | undefined {
  if (event.event === 'JOB_STATUS_CHANGE' || event.event === 'BLOCK_JOB_PENDING') return event.data.id;
  if (typeof event.event === 'string' && event.event.startsWith('BLOCK_JOB_')) return event.data.device;
  return undefined;
}

/** Play `steps` on a fresh connection to `socket` (negotiation included as the first step). */
export async function playScenario(socket: string, steps: readonly ScenarioStep[]): Promise<ScenarioTranscript> {
  const client = await QmpClient.connect(socket, { negotiate: false });
  const replies: unknown[] = [];
  try {
    for (const step of steps) {
      if ('execute' in step) {
        const reply = await client.execute(step.execute, step.arguments);
        replies.push({ execute: step.execute, reply: normalize(reply) });
      } else {
        const matches = (event: QmpObject) =>
          event.event === step.waitFor &&
          (step.status === undefined || event.data?.status === step.status) &&
          (step.id === undefined || jobOf(event) === step.id);
        while (client.events.filter(matches).length < (step.nth ?? 1)) await client.waitForEvent(step.waitFor);
      }
    }
  } finally {
    await client.close();
  }
  const jobs: Record<string, unknown[]> = {};
  const other: unknown[] = [];
  for (const event of client.events) {
    const job = jobOf(event);
    if (job === undefined) {
      other.push(normalize(event));
    } else {
      (jobs[job] ??= []).push(event.event === 'JOB_STATUS_CHANGE' ? event.data.status : normalize(event));
    }
  }
  return { replies, jobs, other };
}
