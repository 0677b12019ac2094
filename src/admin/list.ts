// GET /apisix/admin/<resource>: filters and pagination as APISIX v3 does them
// (apisix/admin/v3_adapter.lua): `name` and `uri` are regular expressions,
// `label` selects items carrying a label (`key` or `key:value`), `filter` is
// a url-encoded `field=value` list, and `page`/`page_size` cut the result.

import { PAL_ERR_ADMIN_BAD_CONFIG, type PalisadeError } from '../core/errors';
import { isPlainObject } from '../schema/json';
import type { StoredItem } from '../store/types';

export interface ListResult {
  list: StoredItem[];
  total: number;
}

function toRegExp(source: string, field: string): RegExp | PalisadeError {
  try {
    return new RegExp(source);
  } catch {
    return PAL_ERR_ADMIN_BAD_CONFIG(`invalid regex in ${field}: ${source}`);
  }
}

function matchesLabel(value: Record<string, unknown>, label: string): boolean {
  const labels = value.labels;
  if (!isPlainObject(labels)) return false;
  const colon = label.indexOf(':');
  if (colon < 0) return Object.hasOwn(labels, label);
  return labels[label.slice(0, colon)] === label.slice(colon + 1);
}

function parsePositiveInt(raw: string | null): number | undefined {
  if (raw === null) return undefined;
  const n = Number(raw);
  return Number.isInteger(n) ? n : NaN;
}

/** Filter, sort by key and paginate; returns the error to send for bad arguments. */
export function listItems(items: StoredItem[], query: URLSearchParams): ListResult | PalisadeError {
  const page = parsePositiveInt(query.get('page'));
  const pageSize = parsePositiveInt(query.get('page_size'));
  if (pageSize !== undefined && !(pageSize >= 10 && pageSize <= 500)) {
    return PAL_ERR_ADMIN_BAD_CONFIG('page_size must be between 10 and 500');
  }
  if (page !== undefined && !(page >= 1)) return PAL_ERR_ADMIN_BAD_CONFIG('page must be a positive integer');

  const tests: Array<(value: Record<string, unknown>) => boolean> = [];
  const name = query.get('name');
  if (name) {
    const re = toRegExp(name, 'name');
    if (!(re instanceof RegExp)) return re;
    tests.push((v) => typeof v.name === 'string' && re.test(v.name));
  }
  const uri = query.get('uri');
  if (uri) {
    const re = toRegExp(uri, 'uri');
    if (!(re instanceof RegExp)) return re;
    tests.push(
      (v) =>
        (typeof v.uri === 'string' && re.test(v.uri)) ||
        (Array.isArray(v.uris) && v.uris.some((u) => typeof u === 'string' && re.test(u))),
    );
  }
  const label = query.get('label');
  if (label) tests.push((v) => matchesLabel(v, label));
  const filter = query.get('filter');
  if (filter) {
    for (const [field, expected] of new URLSearchParams(filter)) {
      tests.push((v) => v[field] !== undefined && String(v[field]) === expected);
    }
  }

  const matched = items
    .filter((item) => tests.every((test) => test(item.value)))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  if (page === undefined && pageSize === undefined) return { list: matched, total: matched.length };
  const size = pageSize ?? 10;
  const start = ((page ?? 1) - 1) * size;
  return { list: matched.slice(start, start + size), total: matched.length };
}
