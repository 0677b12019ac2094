// Placeholder until the router mirror lands: no routes ever match.
import { Out } from '../layout';

export function routerBuild(_spec: Buffer): number {
  return 0;
}
export function routerFree(_router: number): void {}
export function routerMatch(_router: number, _buf: Buffer, out: Int32Array, _ip: Buffer): number {
  out[Out.RouteCount] = 0;
  return 0;
}
