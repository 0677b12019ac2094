// Placeholder until the parser mirror lands.
import { Out, ParseError } from '../layout';

export function parseRequestHead(_buf: Buffer, _off: number, _len: number, out: Int32Array): number {
  out[Out.Status] = ParseError.BadRequest;
  return ParseError.BadRequest;
}
export function parseResponse(_buf: Buffer, _off: number, _len: number, _m: number, out: Int32Array): number {
  out[Out.Status] = ParseError.BadStatus;
  return ParseError.BadStatus;
}
export function chunkedScan(_buf: Buffer, _off: number, _len: number, _state: Int32Array): number {
  return ParseError.BadChunk;
}
