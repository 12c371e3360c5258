import { describe, expect, it } from "vitest";
import { checkContent } from "./http.js";

describe("request content", () => {
  it("accepts JSON in UTF-8, and a body without a content type", () => {
    for (const ct of [
      undefined,
      "",
      "application/json",
      "application/json; charset=utf-8",
      "Application/JSON; charset=UTF8",
      "application/vnd.x+json",
    ])
      expect(checkContent({ "content-type": ct }), String(ct)).toBeUndefined();
    expect(
      checkContent({ "content-type": "application/json", "content-encoding": "identity" }),
    ).toBeUndefined();
  });

  it("refuses other types, charsets and compressed bodies with 415 naming why", () => {
    expect(checkContent({ "content-type": "text/plain" })).toMatchObject({
      status: 415,
      code: "unsupported_media_type",
    });
    expect(checkContent({ "content-type": "application/x-www-form-urlencoded" })?.message).toMatch(
      /application\/json/,
    );
    expect(checkContent({ "content-type": "application/json; charset=latin1" })?.message).toMatch(/latin1/);
    expect(checkContent({ "content-type": "application/json", "content-encoding": "gzip" })).toMatchObject({
      status: 415,
      code: "unsupported_encoding",
    });
  });
});
