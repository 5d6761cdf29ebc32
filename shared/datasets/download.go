package datasets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
)

// resolveURL makes an https URL a one-file source, fetched when read.
func resolveURL(rawURL string, opts Options) *source {
	u, _ := url.Parse(rawURL)
	rel := "download"
	if u != nil {
		rel = path.Base(u.Path)
	}
	f := dataFile{display: rawURL, rel: rel, local: func(ctx context.Context) (string, error) {
		return downloadHTTPS(ctx, rawURL, rel, opts)
	}}
	return &source{origin: "https", splits: map[string][]dataFile{"train": {f}}}
}

// downloadHTTPS fetches an https URL into the download folder, refusing
// redirects away from https and bodies over the size limit.
func downloadHTTPS(ctx context.Context, rawURL, base string, opts Options) (string, error) {
	limit := opts.MaxDownloadBytes
	if limit <= 0 {
		limit = DefaultMaxDownloadBytes
	}
	dir := opts.DownloadDir
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "eft-downloads")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(rawURL))
	dest := filepath.Join(dir, hex.EncodeToString(sum[:8])+"-"+filepath.Base(base))

	client := http.DefaultClient
	if opts.HTTPClient != nil {
		client = opts.HTTPClient
	}
	safe := *client
	safe.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" {
			return fmt.Errorf("redirect to %s refused: only https is followed", req.URL.Redacted())
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", fmt.Errorf("%s: %w", rawURL, err)
	}
	resp, err := safe.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: HTTP %s", rawURL, resp.Status)
	}
	if resp.ContentLength > limit {
		return "", fmt.Errorf("%s: %d bytes is over the download limit of %d bytes", rawURL, resp.ContentLength, limit)
	}
	tmp, err := os.CreateTemp(dir, ".partial-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, io.LimitReader(resp.Body, limit+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", rawURL, err)
	}
	if n > limit {
		return "", fmt.Errorf("%s: body is over the download limit of %d bytes", rawURL, limit)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return "", err
	}
	return dest, nil
}
