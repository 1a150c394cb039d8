/**
 * What a feature declares about itself: its persisted entities, its
 * resolver classes and the factories of its REST routes (each returns a
 * RouteInstaller of http/routes.ts). src/features.ts lists the features; the
 * data source takes its entities, the schema its resolvers and the HTTP
 * server its routes from that one list, so a new entity, resolver or route is
 * added in its feature and nowhere else (resolver instances and route
 * installers are built in the composition root, app.ts, with the services
 * they need, keyed by the class or factory declared here).
 */
export interface Feature {
  readonly name: string;
  readonly entities: readonly Function[];
  readonly resolvers: readonly Function[];
  readonly routes?: readonly Function[];
}
