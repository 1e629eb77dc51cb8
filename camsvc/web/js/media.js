// Downloads (API.md §10.3) need the credential in a header, which <img src> and <a href>
// cannot send: files are fetched with it and shown or saved through blob: URLs.

/** A blob: URL of the file at `downloadUrl`; the caller revokes it when done. */
export async function fetchBlobUrl(token, downloadUrl) {
  const response = await fetch(downloadUrl, {
    headers: { Authorization: `Bearer ${token}` },
    cache: "no-store",
  });
  if (!response.ok) throw new Error(`download failed: HTTP ${response.status}`);
  return URL.createObjectURL(await response.blob());
}

/** Save the file at `downloadUrl` as `filename` through the browser's download. */
export async function saveFile(token, downloadUrl, filename) {
  const url = await fetchBlobUrl(token, downloadUrl);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  // The download has taken its copy once click() returned; a minute is a wide margin.
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** Blob URLs of images by file name, revoked when no longer shown. */
export class ImageCache {
  constructor() {
    this.urls = new Map();
  }

  /** The blob: URL of the file, fetched once. */
  async get(token, filename, downloadUrl) {
    let url = this.urls.get(filename);
    if (!url) {
      url = fetchBlobUrl(token, downloadUrl);
      this.urls.set(filename, url);
      url.catch(() => this.urls.delete(filename));
    }
    return url;
  }

  /** Revoke every URL whose file is not in `keep`. */
  keepOnly(keep) {
    for (const [name, url] of this.urls) {
      if (!keep.has(name)) {
        this.urls.delete(name);
        url.then((u) => URL.revokeObjectURL(u), () => {});
      }
    }
  }
}
