/**
 * What a scenario is and what it gets to run: the workspace with its shared
 * images, the scale and round counts, and the reports of scenarios that
 * ran before it in the same invocation.
 */
import type { ScenarioReport } from './report.js';
import type { BenchScale } from './scale.js';
import type { Workspace } from './workspace.js';

export interface ScenarioContext {
  readonly workspace: Workspace;
  readonly scale: BenchScale;
  /** Reports of the scenarios already run in this invocation, in order. */
  readonly earlier: readonly ScenarioReport[];
  readonly log: (line: string) => void;
}

export interface Scenario {
  /** Name on the command line (`npm run bench -- NAME`). */
  readonly name: string;
  readonly title: string;
  run(context: ScenarioContext): Promise<ScenarioReport>;
}
