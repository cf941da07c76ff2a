/**
 * A byte-level JSON lexer with QEMU's JSON extensions and error recovery,
 * used by the QMP input stream and by JSON command-line options.
 *
 * Accepts: punctuation, double- and single-quoted strings, integers,
 * floats and lower-case keywords. The lexer only finds token boundaries;
 * escapes, UTF-8 and keyword meaning are checked by the parser.
 *
 * On a byte that cannot continue or start a token it emits an ERROR token
 * whose text is the token so far plus the offending byte, then skips input
 * until a structural character (`{ } [ ]`), an ASCII control character other
 * than TAB, or a 0xFE/0xFF byte: clients can resynchronise by sending a
 * newline.
 */

export const enum TokenType {
  LeftCurly,
  RightCurly,
  LeftSquare,
  RightSquare,
  Colon,
  Comma,
  String,
  Integer,
  Float,
  Keyword,
  /** A byte that cannot appear here; `text` holds the token so far and that byte. */
  Error,
}

/** One token: punctuation has no text; strings keep their quotes. */
export interface Token {
  readonly type: TokenType;
  readonly text: Buffer | null;
}

/** Receives each token as soon as it is complete. */
export type TokenSink = (token: Token) => void;

const enum State {
  Start,
  DoubleQuoted,
  DoubleQuotedEscape,
  SingleQuoted,
  SingleQuotedEscape,
  Minus,
  Zero,
  IntegerDigits,
  Dot,
  Fraction,
  Exponent,
  ExponentSign,
  ExponentDigits,
  Keyword,
  Recovery,
}

const PUNCTUATION: Readonly<Record<number, Token>> = {
  0x7b: { type: TokenType.LeftCurly, text: null },
  0x7d: { type: TokenType.RightCurly, text: null },
  0x5b: { type: TokenType.LeftSquare, text: null },
  0x5d: { type: TokenType.RightSquare, text: null },
  0x3a: { type: TokenType.Colon, text: null },
  0x2c: { type: TokenType.Comma, text: null },
};

const isDigit = (byte: number): boolean => byte >= 0x30 && byte <= 0x39;
const isLowerLetter = (byte: number): boolean => byte >= 0x61 && byte <= 0x7a;
const isWhitespace = (byte: number): boolean => byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
/** Bytes allowed inside a string literal (UTF-8 is validated later). */
const isStringByte = (byte: number): boolean => byte >= 0x20 && byte <= 0xfd;
/** Bytes that end error recovery (and are then lexed normally). */
const endsRecovery = (byte: number): boolean =>
  byte === 0x7b || byte === 0x7d || byte === 0x5b || byte === 0x5d || (byte < 0x20 && byte !== 0x09) || byte >= 0xfe;

/** Push lexer: feed chunks with push(), complete tokens go to the sink. One per input stream. */
export class JsonLexer {
  private state = State.Start;
  /** Pieces of the current token that arrived in earlier chunks. */
  private pendingParts: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly sink: TokenSink) {}

  /** Bytes of the token being lexed that are held from earlier chunks. */
  get bytesInProgress(): number {
    return this.pendingBytes;
  }

  /** Lex one chunk; tokens that complete in it are passed to the sink in order. */
  push(chunk: Uint8Array): void {
    const data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let tokenStart = 0;
    let i = 0;
    while (i < data.length) {
      const byte = data[i]!;
      switch (this.state) {
        case State.Start: {
          tokenStart = i;
          const punctuation = PUNCTUATION[byte];
          if (punctuation !== undefined) this.sink(punctuation);
          else if (byte === 0x22) this.state = State.DoubleQuoted;
          else if (byte === 0x27) this.state = State.SingleQuoted;
          else if (byte === 0x2d) this.state = State.Minus;
          else if (byte === 0x30) this.state = State.Zero;
          else if (isDigit(byte)) this.state = State.IntegerDigits;
          else if (isLowerLetter(byte)) this.state = State.Keyword;
          else if (!isWhitespace(byte)) {
            this.fail(data, tokenStart, i);
          }
          i++;
          break;
        }
        case State.DoubleQuoted:
        case State.SingleQuoted: {
          const quote = this.state === State.DoubleQuoted ? 0x22 : 0x27;
          // Fast scan over ordinary string bytes.
          while (i < data.length) {
            const b = data[i]!;
            if (b === quote || b === 0x5c || !isStringByte(b)) break;
            i++;
          }
          if (i === data.length) break;
          const b = data[i]!;
          if (b === quote) {
            this.finish(TokenType.String, data, tokenStart, i + 1);
          } else if (b === 0x5c) {
            this.state = this.state === State.DoubleQuoted ? State.DoubleQuotedEscape : State.SingleQuotedEscape;
          } else {
            this.fail(data, tokenStart, i);
          }
          i++;
          break;
        }
        case State.DoubleQuotedEscape:
        case State.SingleQuotedEscape:
          if (isStringByte(byte)) {
            this.state = this.state === State.DoubleQuotedEscape ? State.DoubleQuoted : State.SingleQuoted;
          } else {
            this.fail(data, tokenStart, i);
          }
          i++;
          break;
        case State.Minus:
          if (byte === 0x30) this.state = State.Zero;
          else if (isDigit(byte)) this.state = State.IntegerDigits;
          else this.fail(data, tokenStart, i);
          i++;
          break;
        case State.Zero:
        case State.IntegerDigits:
          if (isDigit(byte) && this.state === State.IntegerDigits) i++;
          else if (isDigit(byte)) {
            this.fail(data, tokenStart, i);
            i++;
          } else if (byte === 0x2e) {
            this.state = State.Dot;
            i++;
          } else if (byte === 0x65 || byte === 0x45) {
            this.state = State.Exponent;
            i++;
          } else {
            this.finish(TokenType.Integer, data, tokenStart, i); // lookahead: reprocess this byte
          }
          break;
        case State.Dot:
          if (isDigit(byte)) this.state = State.Fraction;
          else this.fail(data, tokenStart, i);
          i++;
          break;
        case State.Fraction:
          if (isDigit(byte)) i++;
          else if (byte === 0x65 || byte === 0x45) {
            this.state = State.Exponent;
            i++;
          } else {
            this.finish(TokenType.Float, data, tokenStart, i);
          }
          break;
        case State.Exponent:
          if (byte === 0x2b || byte === 0x2d) this.state = State.ExponentSign;
          else if (isDigit(byte)) this.state = State.ExponentDigits;
          else this.fail(data, tokenStart, i);
          i++;
          break;
        case State.ExponentSign:
          if (isDigit(byte)) this.state = State.ExponentDigits;
          else this.fail(data, tokenStart, i);
          i++;
          break;
        case State.ExponentDigits:
          if (isDigit(byte)) i++;
          else this.finish(TokenType.Float, data, tokenStart, i);
          break;
        case State.Keyword:
          if (isLowerLetter(byte)) i++;
          else this.finish(TokenType.Keyword, data, tokenStart, i);
          break;
        case State.Recovery:
          if (endsRecovery(byte)) this.state = State.Start;
          else i++;
          break;
      }
    }
    if (this.state !== State.Start && this.state !== State.Recovery) {
      const rest = Buffer.from(data.subarray(tokenStart));
      this.pendingParts.push(rest);
      this.pendingBytes += rest.length;
    }
  }

  /**
   * End of input: a number or keyword in progress is complete; an
   * unterminated string is dropped (the caller reports premature end).
   * Returns true when an unterminated string was dropped.
   */
  end(): boolean {
    const empty = Buffer.alloc(0);
    let truncated = false;
    switch (this.state) {
      case State.Zero:
      case State.IntegerDigits:
        this.finish(TokenType.Integer, empty, 0, 0);
        break;
      case State.Fraction:
      case State.ExponentDigits:
        this.finish(TokenType.Float, empty, 0, 0);
        break;
      case State.Keyword:
        this.finish(TokenType.Keyword, empty, 0, 0);
        break;
      case State.Start:
      case State.Recovery:
        break;
      default:
        truncated = true;
    }
    this.state = State.Start;
    this.pendingParts = [];
    this.pendingBytes = 0;
    return truncated;
  }

  /** Forget any token in progress and start afresh (after the caller gave up on a message). */
  reset(): void {
    this.state = State.Start;
    this.pendingParts = [];
    this.pendingBytes = 0;
  }

  private takeText(data: Buffer, start: number, end: number): Buffer {
    const piece = data.subarray(start, end);
    const text = this.pendingParts.length === 0 ? Buffer.from(piece) : Buffer.concat([...this.pendingParts, piece]);
    this.pendingParts = [];
    this.pendingBytes = 0;
    return text;
  }

  private finish(type: TokenType, data: Buffer, start: number, end: number): void {
    const text = this.takeText(data, start, end);
    this.state = State.Start;
    this.sink({ type, text });
  }

  /** The byte at `offending` cannot continue the token: emit an error token and recover. */
  private fail(data: Buffer, start: number, offending: number): void {
    const text = this.takeText(data, start, offending + 1);
    this.state = State.Recovery;
    this.sink({ type: TokenType.Error, text });
  }
}
