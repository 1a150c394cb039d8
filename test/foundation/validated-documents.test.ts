import { parse } from "graphql";
import { describe, expect, it } from "vitest";
import { ValidatedDocuments } from "../../src/graphql/documents.js";

describe("validated documents shared by subscriptions", () => {
  it("should give every use of the same text the one document kept for it", () => {
    const documents = new ValidatedDocuments();
    const text = "subscription { notifications { id } }";
    const document = parse(text);
    documents.remember(text, document);
    expect(documents.get(text)).toBe(document);
    expect(documents.get(text)).toBe(document);
    expect(documents.get("subscription { notifications { id type } }")).toBeUndefined();
  });

  it("should drop the least recently used document beyond its count", () => {
    const documents = new ValidatedDocuments({ size: 2, sourceChars: 1_000 });
    const [a, b, c] = ["{ a }", "{ b }", "{ c }"];
    documents.remember(a, parse(a));
    documents.remember(b, parse(b));
    documents.get(a); // a is now the most recently used
    documents.remember(c, parse(c));
    expect(documents.get(b)).toBeUndefined();
    expect(documents.get(a)).toBeDefined();
    expect(documents.get(c)).toBeDefined();
    expect(documents.size).toBe(2);
  });

  it("should keep the source text held within its bound, and not keep a text longer than the bound", () => {
    const documents = new ValidatedDocuments({ size: 100, sourceChars: 30 });
    const long = `{ ${"a ".repeat(20)}}`;
    documents.remember(long, parse(long));
    expect(documents.get(long)).toBeUndefined();
    const texts = ["{ one }", "{ two }", "{ three }", "{ four }", "{ five }"];
    for (const t of texts) documents.remember(t, parse(t));
    const kept = texts.filter((t) => documents.get(t) !== undefined);
    expect(kept.reduce((sum, t) => sum + t.length, 0)).toBeLessThanOrEqual(30);
    expect(kept).toEqual(["{ three }", "{ four }", "{ five }"]);
  });
});
