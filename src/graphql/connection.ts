import { type ClassType, Field, Int, ObjectType } from "type-graphql";
import { PageInfo } from "./pagination.js";

/** A page of a keyset-paginated list; the total is counted only when a client asks for it. */
export interface Page<T> {
  nodes: T[];
  pageInfo: PageInfo;
  cursorOf(node: T): string;
  count(): Promise<number>;
}

/** Builds the contract's XConnection / XEdge pair for a node type. */
export function connectionTypes<T extends object>(node: ClassType<T>, connectionName: string, edgeName: string) {
  @ObjectType(edgeName)
  class Edge {
    @Field()
    cursor!: string;

    @Field(() => node)
    node!: T;
  }

  @ObjectType(connectionName)
  class Connection {
    constructor(private readonly page: Page<T>) {}

    @Field(() => [Edge])
    edges(): Edge[] {
      return this.page.nodes.map((n) => Object.assign(new Edge(), { cursor: this.page.cursorOf(n), node: n }));
    }

    @Field(() => [node])
    nodes(): T[] {
      return this.page.nodes;
    }

    @Field(() => PageInfo)
    pageInfo(): PageInfo {
      return this.page.pageInfo;
    }

    @Field(() => Int)
    totalCount(): Promise<number> {
      return this.page.count();
    }
  }
  return { Edge, Connection };
}
