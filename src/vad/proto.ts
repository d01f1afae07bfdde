/**
 * The few pieces of the protobuf wire format needed to read an ONNX model's graph and write a small new one.
 *
 * Hand-written rather than a protobuf library: the rewrite in silero-graph.ts copies nodes byte for byte (a library
 * that decodes against a partial ONNX schema would drop the fields it does not know on re-encoding), and reading
 * tags, varints and length-delimited fields is a few dozen lines.
 */

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_BYTES = 2;
export const WIRE_FIXED32 = 5;

export interface ProtoField {
  /** Field number. */
  no: number;
  wire: number;
  /** The value of a varint field (exact below 2^53; larger or negative int64 values are not needed here). */
  varint: number;
  /** The payload of a length-delimited field, a view into the message. */
  bytes: Uint8Array;
  /** The whole field, tag included, a view into the message: copy it to re-emit the field unchanged. */
  raw: Uint8Array;
}

export class ProtoError extends Error {}

function readVarint(buf: Uint8Array, pos: number): [value: number, next: number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new ProtoError('truncated varint');
    const byte = buf[pos++] as number;
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if ((byte & 0x80) === 0) return [value, pos];
  }
  throw new ProtoError('varint longer than 10 bytes');
}

/** The fields of one message, in order. */
export function readFields(buf: Uint8Array): ProtoField[] {
  const fields: ProtoField[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const start = pos;
    const [tag, afterTag] = readVarint(buf, pos);
    pos = afterTag;
    const no = Math.floor(tag / 8);
    const wire = tag % 8;
    let varint = 0;
    let bytes = buf.subarray(pos, pos);
    if (wire === WIRE_VARINT) {
      [varint, pos] = readVarint(buf, pos);
    } else if (wire === WIRE_FIXED64) {
      bytes = buf.subarray(pos, pos + 8);
      pos += 8;
    } else if (wire === WIRE_FIXED32) {
      bytes = buf.subarray(pos, pos + 4);
      pos += 4;
    } else if (wire === WIRE_BYTES) {
      const [length, afterLength] = readVarint(buf, pos);
      pos = afterLength;
      bytes = buf.subarray(pos, pos + length);
      pos += length;
    } else {
      throw new ProtoError(`unsupported wire type ${wire}`);
    }
    if (pos > buf.length) throw new ProtoError('truncated field');
    fields.push({ no, wire, varint, bytes, raw: buf.subarray(start, pos) });
  }
  return fields;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

export function fieldString(field: ProtoField): string {
  return decoder.decode(field.bytes);
}

/** Unpacks a repeated varint field that may be packed (one bytes field) or not (several varint fields). */
export function repeatedVarints(fields: readonly ProtoField[], no: number): number[] {
  const values: number[] = [];
  for (const field of fields) {
    if (field.no !== no) continue;
    if (field.wire === WIRE_VARINT) {
      values.push(field.varint);
    } else if (field.wire === WIRE_BYTES) {
      let pos = 0;
      while (pos < field.bytes.length) {
        const [value, next] = readVarint(field.bytes, pos);
        values.push(value);
        pos = next;
      }
    }
  }
  return values;
}

/** Builds one message; nested messages are written by passing another writer's bytes to `bytes`. */
export class ProtoWriter {
  private readonly parts: Uint8Array[] = [];
  private length = 0;

  private push(part: Uint8Array): this {
    this.parts.push(part);
    this.length += part.length;
    return this;
  }

  private varint(value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) throw new ProtoError(`cannot write varint ${value}`);
    const out: number[] = [];
    let rest = value;
    while (rest >= 0x80) {
      out.push((rest % 128) | 0x80);
      rest = Math.floor(rest / 128);
    }
    out.push(rest);
    return this.push(Uint8Array.from(out));
  }

  /** A non-negative integer field (int32, int64, enum, bool). */
  uint(no: number, value: number): this {
    return this.varint(no * 8 + WIRE_VARINT).varint(value);
  }

  bytes(no: number, value: Uint8Array): this {
    return this.varint(no * 8 + WIRE_BYTES)
      .varint(value.length)
      .push(value);
  }

  string(no: number, value: string): this {
    return this.bytes(no, encoder.encode(value));
  }

  message(no: number, message: ProtoWriter): this {
    return this.bytes(no, message.finish());
  }

  /** Appends an already encoded field (tag included) unchanged. */
  raw(field: Uint8Array): this {
    return this.push(field);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const part of this.parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }
}
