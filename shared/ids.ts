/** Whether a path or query value is a UUID (any case), before it is used as a `uuid` column value: PostgreSQL rejects anything else with an error, which must be a 404/400, never a 500. */
export const isUuid = (value: string): boolean => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
