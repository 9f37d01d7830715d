/** Reads a response body as JSON for assertions (tests inspect arbitrary shapes). */

export async function json(res: Response): Promise<any> {
  return res.json();
}
