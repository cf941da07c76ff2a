/**
 * ConversationBuilder: writes the client side of an NBD conversation as
 * bytes (fixed newstyle handshake, options, transmission requests), and
 * remembers where its length and offset fields are so the mutator can aim
 * at them. Independent of src/nbd on purpose: the fuzzer must not share
 * the codec it tests.
 */
const OPTS_MAGIC = 0x49484156454f5054n;
const REQUEST_MAGIC = 0x25609513;
const encoder = new TextEncoder();

export class ConversationBuilder {
  private readonly parts: Uint8Array[] = [];
  private length = 0;
  /** Offsets of big-endian length/offset fields in the bytes so far. */
  readonly fields: { offset: number; width: 4 | 8 }[] = [];

  /** Start with the client flags word (fixed newstyle, no zeroes). */
  constructor(clientFlags: number) {
    this.push(u32(clientFlags));
  }

  /** An option with raw data. */
  option(code: number, data: Uint8Array): this {
    const header = new Uint8Array(16);
    const view = new DataView(header.buffer);
    view.setBigUint64(0, OPTS_MAGIC);
    view.setUint32(8, code);
    view.setUint32(12, data.length);
    this.fields.push({ offset: this.length + 8, width: 4 }, { offset: this.length + 12, width: 4 });
    this.push(header);
    this.push(data);
    return this;
  }

  /** NBD_OPT_INFO / NBD_OPT_GO: export name and requested info types. */
  go(code: number, exportName: string, infos: readonly number[]): this {
    const name = encoder.encode(exportName);
    const data = new Uint8Array(4 + name.length + 2 + 2 * infos.length);
    const view = new DataView(data.buffer);
    view.setUint32(0, name.length);
    data.set(name, 4);
    view.setUint16(4 + name.length, infos.length);
    infos.forEach((info, index) => view.setUint16(6 + name.length + 2 * index, info));
    this.fields.push({ offset: this.length + 16, width: 4 });
    return this.option(code, data);
  }

  /** NBD_OPT_SET_META_CONTEXT / LIST_META_CONTEXT. */
  metaContext(code: number, exportName: string, queries: readonly string[]): this {
    const name = encoder.encode(exportName);
    const encoded = queries.map((query) => encoder.encode(query));
    const data = new Uint8Array(8 + name.length + encoded.reduce((sum, query) => sum + 4 + query.length, 0));
    const view = new DataView(data.buffer);
    view.setUint32(0, name.length);
    data.set(name, 4);
    view.setUint32(4 + name.length, encoded.length);
    let at = 8 + name.length;
    this.fields.push({ offset: this.length + 16, width: 4 }, { offset: this.length + 16 + 4 + name.length, width: 4 });
    for (const query of encoded) {
      view.setUint32(at, query.length);
      this.fields.push({ offset: this.length + 16 + at, width: 4 });
      data.set(query, at + 4);
      at += 4 + query.length;
    }
    return this.option(code, data);
  }

  /** NBD_OPT_EXPORT_NAME: ends the handshake without a reply. */
  exportName(name: string): this {
    return this.option(1, encoder.encode(name));
  }

  /** A transmission request (with payload for WRITE). */
  request(type: number, flags: number, cookie: bigint, offset: number, length: number, payload?: Uint8Array): this {
    const header = new Uint8Array(28);
    const view = new DataView(header.buffer);
    view.setUint32(0, REQUEST_MAGIC);
    view.setUint16(4, flags);
    view.setUint16(6, type);
    view.setBigUint64(8, cookie);
    view.setBigUint64(16, BigInt(offset));
    view.setUint32(24, length);
    this.fields.push({ offset: this.length + 16, width: 8 }, { offset: this.length + 24, width: 4 }, { offset: this.length + 4, width: 4 });
    this.push(header);
    if (payload) this.push(payload);
    return this;
  }

  /** Everything written so far. */
  bytes(): Uint8Array {
    return Buffer.concat(this.parts);
  }

  private push(part: Uint8Array): void {
    this.parts.push(part);
    this.length += part.length;
  }
}

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}
