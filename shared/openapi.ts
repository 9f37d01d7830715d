/** Small builders for route definitions, so every JSON body is declared required (and thus validated). */

/** `content` of a JSON request or response. */
export const jsonContent = <T,>(schema: T) => ({ content: { 'application/json': { schema } } });

/** A required JSON request body: an optional one would let a wrong content type skip validation. */
export const jsonBody = <T,>(schema: T) => ({ body: { required: true, ...jsonContent(schema) } });
