// traffic-split: send a share of a route's traffic to other upstreams
// (canary, blue/green). The first rule whose `match` has a matching `vars`
// expression (matches are OR'd; no match list = always) picks one of its
// weighted_upstreams by smooth weighted round robin; an entry with neither
// `upstream_id` nor `upstream` keeps the route's own upstream.

import { compileExpr, type CompiledExpr, validateExpr } from '../../core/expr';
import { upstreamSchema } from '../../schema/definitions';
import type { Upstream } from '../../schema/types';
import type { JsonSchema, PluginContext, PluginModule } from '../types';

const schema: JsonSchema = {
  type: 'object',
  properties: {
    rules: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          match: {
            type: 'array',
            items: { type: 'object', properties: { vars: { type: 'array' } } },
          },
          weighted_upstreams: {
            type: 'array',
            minItems: 1,
            maxItems: 20,
            items: {
              type: 'object',
              properties: {
                upstream_id: {
                  anyOf: [
                    { type: 'string', minLength: 1, maxLength: 64 },
                    { type: 'integer', minimum: 1 },
                  ],
                },
                upstream: upstreamSchema,
                weight: { type: 'integer', minimum: 0, default: 1 },
              },
            },
          },
        },
      },
    },
  },
};

interface WeightedUpstreamConf {
  upstream_id?: string | number;
  upstream?: Upstream;
  weight?: number;
}

interface RuleConf {
  match?: { vars?: unknown[] }[];
  weighted_upstreams?: WeightedUpstreamConf[];
}

interface TrafficSplitConf {
  rules?: RuleConf[];
}

/** Smooth weighted round robin (nginx's): each pick adds every weight, takes the largest, subtracts the total. */
class WeightedPicker {
  readonly #targets: readonly (Upstream | string | null)[];
  readonly #weights: Int32Array;
  readonly #current: Int32Array;
  readonly #total: number;

  constructor(entries: readonly { target: Upstream | string | null; weight: number }[]) {
    const kept = entries.filter((entry) => entry.weight > 0);
    this.#targets = kept.map((entry) => entry.target);
    this.#weights = Int32Array.from(kept.map((entry) => entry.weight));
    this.#current = new Int32Array(kept.length);
    this.#total = kept.reduce((sum, entry) => sum + entry.weight, 0);
  }

  /** The next target: an upstream, an upstream id, null for the route's own; undefined when every weight is 0. */
  pick(): Upstream | string | null | undefined {
    if (this.#targets.length === 0) return undefined;
    let best = 0;
    for (let i = 0; i < this.#weights.length; i++) {
      this.#current[i] += this.#weights[i];
      if (this.#current[i] > this.#current[best]) best = i;
    }
    this.#current[best] -= this.#total;
    return this.#targets[best];
  }
}

interface CompiledRule {
  /** OR of the match entries' vars; empty = matches every request. */
  readonly match: readonly CompiledExpr[];
  readonly picker: WeightedPicker;
}

export interface CompiledTrafficSplit {
  readonly rules: readonly CompiledRule[];
}

function ruleMatches(rule: CompiledRule, ctx: PluginContext): boolean {
  if (rule.match.length === 0) return true;
  const lookup = (name: string) => ctx.var(name);
  for (const expr of rule.match) if (expr(lookup)) return true;
  return false;
}

const trafficSplit: PluginModule<CompiledTrafficSplit> = {
  name: 'traffic-split',
  version: '0.1',
  priority: 966,
  schema,
  check(raw) {
    const conf = raw as TrafficSplitConf;
    for (const rule of conf.rules ?? []) {
      for (const match of rule.match ?? []) {
        if (match.vars === undefined) continue;
        const error = validateExpr(match.vars);
        if (error !== undefined) return `failed to validate the 'vars' expression: ${error}`;
      }
      for (const entry of rule.weighted_upstreams ?? []) {
        if (entry.upstream !== undefined && entry.upstream_id !== undefined) {
          return 'only one of upstream and upstream_id can be set in weighted_upstreams';
        }
      }
    }
    return undefined;
  },
  compile(raw) {
    const conf = raw as TrafficSplitConf;
    return {
      rules: (conf.rules ?? []).map((rule) => ({
        match: (rule.match ?? []).filter((entry) => entry.vars !== undefined).map((entry) => compileExpr(entry.vars)),
        picker: new WeightedPicker(
          (rule.weighted_upstreams ?? []).map((entry) => ({
            target: entry.upstream ?? (entry.upstream_id !== undefined ? String(entry.upstream_id) : null),
            weight: entry.weight ?? 1,
          })),
        ),
      })),
    };
  },
  access(compiled, ctx) {
    for (const rule of compiled.rules) {
      if (!ruleMatches(rule, ctx)) continue;
      const target = rule.picker.pick();
      if (target !== undefined && target !== null) ctx.setUpstream(target);
      return undefined;
    }
    return undefined;
  },
};

export default trafficSplit;
