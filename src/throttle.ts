/**
 * Lets one occurrence through per interval and counts the rest, for log lines
 * and events that anyone can trigger (an anonymous callback costs nothing to send).
 */
export class Throttle {
  #last = Number.NEGATIVE_INFINITY;
  #suppressed = 0;

  constructor(private readonly intervalMs: number) {}

  /** The number left out since the last one let through, or undefined when this one is left out. */
  pass(now = Date.now()): number | undefined {
    if (now - this.#last < this.intervalMs) {
      this.#suppressed++;
      return undefined;
    }
    const suppressed = this.#suppressed;
    this.#last = now;
    this.#suppressed = 0;
    return suppressed;
  }
}
