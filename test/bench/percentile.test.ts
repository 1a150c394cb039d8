import { describe, expect, it } from "vitest";
import { percentile } from "../../bench/measure.js";

describe("bench percentiles (nearest rank)", () => {
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);

  it("of 100 samples, p99 is the 99th and p50 the 50th, not the largest and the 51st", () => {
    expect(percentile(hundred, 0.99)).toBe(99);
    expect(percentile(hundred, 0.5)).toBe(50);
    expect(percentile(hundred, 1)).toBe(100);
  });

  it("of 1,000 samples, p99 has ten samples above it", () => {
    const thousand = Array.from({ length: 1000 }, (_, i) => i + 1);
    expect(percentile(thousand, 0.99)).toBe(990);
    expect(thousand.filter((v) => v > percentile(thousand, 0.99))).toHaveLength(10);
  });

  it("one sample is every percentile; none is NaN", () => {
    expect(percentile([7], 0.01)).toBe(7);
    expect(percentile([7], 0.99)).toBe(7);
    expect(percentile([], 0.5)).toBeNaN();
  });
});
