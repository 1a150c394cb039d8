import type { DocumentNode } from "graphql";

/** How many validated documents are kept, and how much of their source text in all. */
export const VALIDATED_DOCUMENTS_SIZE = 1_000;
export const VALIDATED_DOCUMENTS_SOURCE_CHARS = 1_000_000;

/**
 * Validated documents by their source text, least recently used dropped
 * first, bounded in count and in source characters. Thousands of WebSocket
 * clients subscribe with the same text: they share one parsed document
 * (graphql-js never changes one once parsed) instead of each holding its
 * own syntax tree and tokens for as long as it is subscribed, and the text
 * is validated once. Only documents that passed validation against the
 * schema are kept; what depends on the request (variables, cost with them,
 * the caller's quota) is checked on every use.
 */
export class ValidatedDocuments {
  private readonly entries = new Map<string, DocumentNode>();
  private sourceChars = 0;

  constructor(private readonly limits: { size: number; sourceChars: number } = { size: VALIDATED_DOCUMENTS_SIZE, sourceChars: VALIDATED_DOCUMENTS_SOURCE_CHARS }) {}

  get size(): number {
    return this.entries.size;
  }

  get(source: string): DocumentNode | undefined {
    const document = this.entries.get(source);
    if (document) {
      // Most recently used last: the first key is the one to drop.
      this.entries.delete(source);
      this.entries.set(source, document);
    }
    return document;
  }

  /** Keeps a document that passed validation; a source too long to fit the bound is not kept. */
  remember(source: string, document: DocumentNode): void {
    if (source.length > this.limits.sourceChars) return;
    if (this.entries.delete(source)) this.sourceChars -= source.length;
    this.entries.set(source, document);
    this.sourceChars += source.length;
    while (this.entries.size > this.limits.size || this.sourceChars > this.limits.sourceChars) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
      this.sourceChars -= oldest.length;
    }
  }
}
