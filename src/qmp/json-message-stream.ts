/**
 * Splits a byte stream into JSON messages the way QEMU's JSON streamer
 * does: any whitespace (or none) may separate messages, a message ends when
 * its braces and brackets balance, and errors are reported per message
 * while the stream keeps going. Limits keep a hostile peer from making us
 * buffer without bound: the bytes of one message, its token count and its
 * nesting depth. Our token limit is lower than QEMU's, so a message over it
 * is skipped whole with one error (QEMU would split the rest of it into a
 * message per token; it only does that past its own, higher limit).
 */
import { LivebackupError, messageOf } from '../errors.js';
import { JsonLexer, TokenType, type Token } from './json-lexer.js';
import { parseJsonTokens, jsonParseError, type JsonValue } from './json-parser.js';

export interface JsonStreamLimits {
  /** Bytes of token text one message may hold (exceeding it is fatal: the stream stops). */
  readonly maxMessageBytes: number;
  /** Tokens one message may hold (QEMU allows 2 Mi; no QMP command needs a fraction of that). */
  readonly maxTokens: number;
  /** Open braces plus brackets one message may nest. */
  readonly maxDepth: number;
}

export const DEFAULT_JSON_LIMITS: JsonStreamLimits = {
  maxMessageBytes: 16 * 1024 * 1024,
  maxTokens: 256 * 1024,
  maxDepth: 1024,
};

/** What the stream produced: a value, or an error text. `fatal` errors end the stream. */
export type JsonMessage =
  | { readonly kind: 'value'; readonly value: JsonValue }
  | { readonly kind: 'error'; readonly message: string; readonly fatal: boolean };

/** One per input stream: push() bytes, receive each message (or error) through the callback. */
export class JsonMessageStream {
  private readonly lexer: JsonLexer;
  private tokens: Token[] = [];
  private tokenBytes = 0;
  private braces = 0;
  private brackets = 0;
  private stopped = false;
  /**
   * After a message exceeded the token count: the rest of it is skipped (its
   * brackets still counted) and reported by that one error, not split into
   * a reply per remaining token.
   */
  private skipping = false;

  constructor(
    private readonly onMessage: (message: JsonMessage) => void,
    private readonly limits: JsonStreamLimits = DEFAULT_JSON_LIMITS,
  ) {
    this.lexer = new JsonLexer((token) => this.take(token));
  }

  /** True after a fatal error: further input is ignored. */
  get isStopped(): boolean {
    return this.stopped;
  }

  /** Feed bytes; complete messages are reported synchronously, in order. */
  push(chunk: Uint8Array): void {
    if (this.stopped) return;
    this.lexer.push(chunk);
    if (!this.stopped && this.tokenBytes + this.lexer.bytesInProgress > this.limits.maxMessageBytes) {
      this.stop('JSON token size limit exceeded');
    }
  }

  /** End of input: a message still open is reported as "premature EOI". */
  end(): void {
    if (this.stopped) return;
    const truncated = this.lexer.end();
    if (this.stopped) return;
    if (this.tokens.length > 0 || truncated) this.emitError(jsonParseError('premature EOI').message, false);
  }

  private stop(message: string): void {
    this.stopped = true;
    this.lexer.reset();
    this.emitError(message, true);
  }

  private emitError(message: string, fatal: boolean): void {
    this.resetMessage();
    this.onMessage({ kind: 'error', message, fatal });
  }

  /** True while the current message's braces and brackets are open (and none closed too often). */
  private messageOpen(): boolean {
    return (this.braces > 0 || this.brackets > 0) && this.braces >= 0 && this.brackets >= 0;
  }

  private resetMessage(): void {
    this.tokens = [];
    this.tokenBytes = 0;
    this.braces = 0;
    this.brackets = 0;
  }

  private take(token: Token): void {
    if (this.stopped) return;
    switch (token.type) {
      case TokenType.LeftCurly: this.braces++; break;
      case TokenType.RightCurly: this.braces--; break;
      case TokenType.LeftSquare: this.brackets++; break;
      case TokenType.RightSquare: this.brackets--; break;
      case TokenType.Error:
        if (this.skipping) return;
        // QEMU prints the text as a C string: it ends at a NUL byte.
        this.emitError(`JSON parse error, stray '${token.text!.toString('utf8').split('\0')[0]}'`, false);
        return;
      default:
        break;
    }
    const size = token.text === null ? 1 : token.text.length;
    if (this.tokenBytes + size > this.limits.maxMessageBytes) {
      this.stop('JSON token size limit exceeded');
      return;
    }
    if (this.skipping) {
      this.tokenBytes += size;
      if (!this.messageOpen()) {
        this.skipping = false;
        this.resetMessage();
      }
      return;
    }
    if (this.tokens.length + 1 > this.limits.maxTokens) {
      this.tokens = [];
      this.onMessage({ kind: 'error', message: 'JSON token count limit exceeded', fatal: false });
      this.tokenBytes += size;
      this.skipping = this.messageOpen();
      if (!this.skipping) this.resetMessage();
      return;
    }
    if (this.braces + this.brackets > this.limits.maxDepth) {
      this.emitError('JSON nesting depth limit exceeded', false);
      return;
    }
    this.tokens.push(token);
    this.tokenBytes += size;
    if (this.messageOpen()) return;

    const tokens = this.tokens;
    this.resetMessage();
    let message: JsonMessage;
    try {
      message = { kind: 'value', value: parseJsonTokens(tokens) };
    } catch (error) {
      message = { kind: 'error', message: messageOf(error), fatal: false };
    }
    this.onMessage(message);
  }
}

/**
 * Parse a complete text that must hold exactly one JSON value (a JSON
 * command-line option). Throws LivebackupError INVALID_ARGUMENT with
 * QEMU's texts.
 */
export function parseJsonText(text: string): JsonValue {
  const values: JsonValue[] = [];
  let failure: string | undefined;
  const stream = new JsonMessageStream((message) => {
    if (message.kind === 'value') values.push(message.value);
    else failure ??= message.message;
  });
  stream.push(Buffer.from(text, 'utf8'));
  stream.end();
  if (failure !== undefined) throw new LivebackupError('INVALID_ARGUMENT', failure);
  if (values.length === 0) throw new LivebackupError('INVALID_ARGUMENT', 'Expecting a JSON value');
  if (values.length > 1) throw new LivebackupError('INVALID_ARGUMENT', 'Expecting at most one JSON value');
  return values[0]!;
}
