/**
 * What a feature declares about itself: its persisted entities and its
 * resolver classes. src/features.ts lists the features; the data source takes
 * its entities and the schema its resolvers from that one list, so a new
 * entity or resolver is added in its feature and nowhere else (its instance is
 * built in the composition root, app.ts, as every service is).
 */
export interface Feature {
  readonly name: string;
  readonly entities: readonly Function[];
  readonly resolvers: readonly Function[];
}
