// What the Admin API needs to know about plugins: which exist and how to check
// a configuration. The plugin registry implements it in a later issue; until
// then a server without a catalog stores plugin configs unchecked.

export type PluginKind = 'route' | 'consumer' | 'metadata';

export interface PluginCatalog {
  has(name: string): boolean;
  /** An error message for an invalid configuration, or undefined when it is valid. */
  validate(name: string, conf: unknown, kind: PluginKind): string | undefined;
  names(): string[];
  /** The plugin's JSON Schema for GET /schema/plugins/{name}, when the catalog has one. */
  schema?(name: string, kind: PluginKind): Record<string, unknown> | undefined;
}

/** A catalog that knows no plugin. */
export const emptyPluginCatalog: PluginCatalog = {
  has: () => false,
  validate: () => undefined,
  names: () => [],
};
