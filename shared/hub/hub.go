package hub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// RepoType is "model" or "dataset".
type RepoType string

const (
	Model   RepoType = "model"
	Dataset RepoType = "dataset"
)

// DefaultEndpoint is the hub's address when HF_ENDPOINT is unset.
const DefaultEndpoint = "https://huggingface.co"

// Errors a caller may want to tell apart; returned errors wrap them.
var (
	ErrRepoNotFound     = errors.New("repository not found")
	ErrRevisionNotFound = errors.New("revision not found")
	ErrEntryNotFound    = errors.New("file not found in repository")
	ErrUnauthorized     = errors.New("not authorized (set HF_TOKEN for private or gated repos)")
	ErrOffline          = errors.New("not in the local cache and offline")
)

// Client talks to one hub endpoint and keeps one cache.
type Client struct {
	Endpoint string       // e.g. https://huggingface.co, no trailing slash
	Token    string       // sent as a bearer token to the endpoint only
	CacheDir string       // the hub cache (HF_HUB_CACHE)
	Offline  bool         // never use the network (HF_HUB_OFFLINE)
	HTTP     *http.Client // nil means http.DefaultClient
}

// NewFromEnv builds a client the way huggingface_hub reads its environment.
func NewFromEnv() *Client {
	home := os.Getenv("HF_HOME")
	if home == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			userHome, _ := os.UserHomeDir()
			cache = filepath.Join(userHome, ".cache")
		}
		home = filepath.Join(cache, "huggingface")
	}
	cacheDir := os.Getenv("HF_HUB_CACHE")
	if cacheDir == "" {
		cacheDir = os.Getenv("HUGGINGFACE_HUB_CACHE")
	}
	if cacheDir == "" {
		cacheDir = filepath.Join(home, "hub")
	}
	token := os.Getenv("HF_TOKEN")
	if token == "" {
		tokenPath := os.Getenv("HF_TOKEN_PATH")
		if tokenPath == "" {
			tokenPath = filepath.Join(home, "token")
		}
		if b, err := os.ReadFile(tokenPath); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	endpoint := os.Getenv("HF_ENDPOINT")
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	return &Client{
		Endpoint: strings.TrimRight(endpoint, "/"),
		Token:    token,
		CacheDir: cacheDir,
		Offline:  envTrue(os.Getenv("HF_HUB_OFFLINE")),
	}
}

func envTrue(v string) bool {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "1", "ON", "YES", "TRUE":
		return true
	}
	return false
}

var (
	commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)
	repoIDRE = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

func checkRepo(t RepoType, repo string) error {
	if t != Model && t != Dataset {
		return fmt.Errorf("hub: repo type %q (want model or dataset)", t)
	}
	if !repoIDRE.MatchString(repo) || strings.Contains(repo, "--") || strings.Contains(repo, "..") || len(repo) > 96 {
		return fmt.Errorf("hub: %q is not a valid repo id (owner/name)", repo)
	}
	return nil
}

// checkFilename refuses paths that could leave the snapshot folder.
func checkFilename(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("hub: file name %q is not a clean relative path", name)
	}
	return nil
}

// RepoDir is the repo's folder in the cache.
func (c *Client) RepoDir(t RepoType, repo string) string {
	return filepath.Join(c.CacheDir, string(t)+"s--"+strings.ReplaceAll(repo, "/", "--"))
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) endpoint() string {
	if c.Endpoint == "" {
		return DefaultEndpoint
	}
	return strings.TrimRight(c.Endpoint, "/")
}

// RepoInfo is a repo at one commit.
type RepoInfo struct {
	Commit string
	Files  []string
}

// Resolve turns a revision (branch, tag or commit; "" means main) into a
// commit and the repo's file list, and records the ref in the cache. Offline
// it answers from the cache: the files of that commit's snapshot.
func (c *Client) Resolve(ctx context.Context, t RepoType, repo, revision string) (RepoInfo, error) {
	if err := checkRepo(t, repo); err != nil {
		return RepoInfo{}, err
	}
	if revision == "" {
		revision = "main"
	}
	if c.Offline {
		return c.resolveFromCache(t, repo, revision)
	}
	u := fmt.Sprintf("%s/api/%ss/%s/revision/%s", c.endpoint(), t, repo, url.PathEscape(revision))
	var info struct {
		SHA      string `json:"sha"`
		Siblings []struct {
			RFilename string `json:"rfilename"`
		} `json:"siblings"`
	}
	if err := c.getJSON(ctx, u, &info, nil); err != nil {
		return RepoInfo{}, fmt.Errorf("hub: %s %s@%s: %w", t, repo, revision, err)
	}
	if !commitRE.MatchString(info.SHA) {
		return RepoInfo{}, fmt.Errorf("hub: %s %s@%s: the API answered commit %q", t, repo, revision, info.SHA)
	}
	out := RepoInfo{Commit: info.SHA}
	for _, s := range info.Siblings {
		out.Files = append(out.Files, s.RFilename)
	}
	if len(info.Siblings) == 0 {
		files, err := c.ListTree(ctx, t, repo, info.SHA)
		if err != nil {
			return RepoInfo{}, err
		}
		out.Files = files
	}
	if err := c.writeRef(t, repo, revision, info.SHA); err != nil {
		return RepoInfo{}, err
	}
	return out, nil
}

// ListTree lists every file of a repo at a revision through the paginated
// tree API.
func (c *Client) ListTree(ctx context.Context, t RepoType, repo, revision string) ([]string, error) {
	if err := checkRepo(t, repo); err != nil {
		return nil, err
	}
	next := fmt.Sprintf("%s/api/%ss/%s/tree/%s?recursive=true&expand=false", c.endpoint(), t, repo, url.PathEscape(revision))
	var files []string
	for pages := 0; next != ""; pages++ {
		if pages > 10000 {
			return nil, fmt.Errorf("hub: %s %s: tree listing does not end", t, repo)
		}
		var entries []struct {
			Type string `json:"type"`
			Path string `json:"path"`
		}
		var link string
		if err := c.getJSON(ctx, next, &entries, &link); err != nil {
			return nil, fmt.Errorf("hub: %s %s@%s tree: %w", t, repo, revision, err)
		}
		for _, e := range entries {
			if e.Type == "file" {
				files = append(files, e.Path)
			}
		}
		next = nextLink(link)
		if next != "" {
			nu, err := url.Parse(next)
			if err != nil || !sameHost(nu, c.endpoint()) {
				return nil, fmt.Errorf("hub: tree pagination points to another host: %q", next)
			}
		}
	}
	return files, nil
}

// nextLink extracts the rel="next" target of an HTTP Link header.
func nextLink(h string) string {
	for _, part := range strings.Split(h, ",") {
		segs := strings.Split(part, ";")
		if len(segs) < 2 {
			continue
		}
		target := strings.TrimSpace(segs[0])
		for _, s := range segs[1:] {
			if strings.ReplaceAll(strings.TrimSpace(s), " ", "") == `rel="next"` && strings.HasPrefix(target, "<") && strings.HasSuffix(target, ">") {
				return target[1 : len(target)-1]
			}
		}
	}
	return ""
}

func sameHost(u *url.URL, endpoint string) bool {
	e, err := url.Parse(endpoint)
	return err == nil && u.Scheme == e.Scheme && u.Host == e.Host
}

func (c *Client) authorize(req *http.Request) {
	if c.Token != "" && sameHost(req.URL, c.endpoint()) {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
}

func (c *Client) getJSON(ctx context.Context, u string, into any, link *string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	c.authorize(req)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := statusError(resp); err != nil {
		return err
	}
	if link != nil {
		*link = resp.Header.Get("Link")
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(into)
}

// statusError maps the hub's error answers (X-Error-Code) to our errors.
func statusError(resp *http.Response) error {
	if resp.StatusCode < 400 {
		return nil
	}
	msg := resp.Header.Get("X-Error-Message")
	if msg == "" {
		msg = resp.Status
	}
	switch resp.Header.Get("X-Error-Code") {
	case "RepoNotFound":
		return fmt.Errorf("%w: %s", ErrRepoNotFound, msg)
	case "RevisionNotFound":
		return fmt.Errorf("%w: %s", ErrRevisionNotFound, msg)
	case "EntryNotFound":
		return fmt.Errorf("%w: %s", ErrEntryNotFound, msg)
	case "GatedRepo":
		return fmt.Errorf("%w: %s", ErrUnauthorized, msg)
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w: %s", ErrUnauthorized, msg)
	case http.StatusNotFound:
		return fmt.Errorf("%w: %s", ErrRepoNotFound, msg)
	}
	return fmt.Errorf("HTTP %s", msg)
}

func (c *Client) writeRef(t RepoType, repo, revision, commit string) error {
	if revision == commit {
		return nil
	}
	if err := checkFilename(revision); err != nil {
		return fmt.Errorf("hub: revision %q cannot be cached as a ref", revision)
	}
	p := filepath.Join(c.RepoDir(t, repo), "refs", filepath.FromSlash(revision))
	if old, err := os.ReadFile(p); err == nil && string(old) == commit {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return writeFileAtomic(p, []byte(commit))
}

func writeFileAtomic(p string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// cachedCommit resolves a revision from the cache alone.
func (c *Client) cachedCommit(t RepoType, repo, revision string) (string, bool) {
	if commitRE.MatchString(revision) {
		return revision, true
	}
	if checkFilename(revision) != nil {
		return "", false
	}
	b, err := os.ReadFile(filepath.Join(c.RepoDir(t, repo), "refs", filepath.FromSlash(revision)))
	if err != nil || !commitRE.MatchString(strings.TrimSpace(string(b))) {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

func (c *Client) resolveFromCache(t RepoType, repo, revision string) (RepoInfo, error) {
	commit, ok := c.cachedCommit(t, repo, revision)
	if !ok {
		return RepoInfo{}, fmt.Errorf("hub: %s %s@%s: %w", t, repo, revision, ErrOffline)
	}
	snap := filepath.Join(c.RepoDir(t, repo), "snapshots", commit)
	var files []string
	err := filepath.WalkDir(snap, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(snap, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return RepoInfo{}, fmt.Errorf("hub: %s %s@%s: %w", t, repo, revision, ErrOffline)
	}
	return RepoInfo{Commit: commit, Files: files}, nil
}

// fileMeta is what a HEAD on /resolve/ says about a file.
type fileMeta struct {
	commit   string
	etag     string
	size     int64
	location string // where to GET the bytes (the CDN for LFS files)
}

func normalizeETag(e string) string {
	e = strings.TrimPrefix(strings.TrimSpace(e), "W/")
	return strings.Trim(e, `"`)
}

func (c *Client) resolveURL(t RepoType, repo, revision, filename string) string {
	prefix := ""
	if t == Dataset {
		prefix = "datasets/"
	}
	parts := strings.Split(filename, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return fmt.Sprintf("%s/%s%s/resolve/%s/%s", c.endpoint(), prefix, repo, url.PathEscape(revision), strings.Join(parts, "/"))
}

// head asks the hub about a file, following relative redirects (renamed
// repos) but stopping at the first absolute one (the LFS CDN), as
// huggingface_hub does.
func (c *Client) head(ctx context.Context, u string) (fileMeta, error) {
	noFollow := *c.httpClient()
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for hops := 0; hops < 10; hops++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
		if err != nil {
			return fileMeta{}, err
		}
		req.Header.Set("Accept-Encoding", "identity")
		c.authorize(req)
		resp, err := noFollow.Do(req)
		if err != nil {
			return fileMeta{}, err
		}
		resp.Body.Close()
		if err := statusError(resp); err != nil {
			return fileMeta{}, err
		}
		loc := resp.Header.Get("Location")
		if resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
			target, err := req.URL.Parse(loc)
			if err != nil {
				return fileMeta{}, fmt.Errorf("bad redirect %q: %w", loc, err)
			}
			if !strings.Contains(loc, "://") { // relative: the repo moved
				u = target.String()
				continue
			}
			return c.metaFrom(resp, target.String())
		}
		return c.metaFrom(resp, u)
	}
	return fileMeta{}, errors.New("too many redirects")
}

func (c *Client) metaFrom(resp *http.Response, location string) (fileMeta, error) {
	m := fileMeta{commit: resp.Header.Get("X-Repo-Commit"), location: location}
	m.etag = normalizeETag(resp.Header.Get("X-Linked-Etag"))
	if m.etag == "" {
		m.etag = normalizeETag(resp.Header.Get("ETag"))
	}
	size := resp.Header.Get("X-Linked-Size")
	if size == "" {
		size = resp.Header.Get("Content-Length")
	}
	m.size, _ = strconv.ParseInt(size, 10, 64)
	if !commitRE.MatchString(m.commit) {
		return fileMeta{}, fmt.Errorf("the server sent no valid X-Repo-Commit (%q); is HF_ENDPOINT a hub?", m.commit)
	}
	if m.etag == "" || strings.ContainsAny(m.etag, `/\`) || m.etag == "." || m.etag == ".." {
		return fileMeta{}, fmt.Errorf("the server sent no usable ETag (%q)", m.etag)
	}
	return m, nil
}

// Download makes one file of a repo at a revision available locally and
// returns its path inside snapshots/<commit>/. A revision that is a commit
// already in the cache is served without the network.
func (c *Client) Download(ctx context.Context, t RepoType, repo, revision, filename string) (string, error) {
	if err := checkRepo(t, repo); err != nil {
		return "", err
	}
	if err := checkFilename(filename); err != nil {
		return "", err
	}
	if revision == "" {
		revision = "main"
	}
	what := fmt.Sprintf("hub: %s %s@%s/%s", t, repo, revision, filename)
	repoDir := c.RepoDir(t, repo)
	if commitRE.MatchString(revision) {
		if p := filepath.Join(repoDir, "snapshots", revision, filepath.FromSlash(filename)); fileExists(p) {
			return p, nil
		}
	}
	if c.Offline {
		return c.fromCache(t, repo, revision, filename, what, ErrOffline)
	}
	meta, err := c.head(ctx, c.resolveURL(t, repo, revision, filename))
	if err != nil {
		var netErr interface{ Timeout() bool }
		if errors.As(err, &netErr) || isConnErr(err) {
			// The hub is unreachable: fall back to the cache, as huggingface_hub does.
			return c.fromCache(t, repo, revision, filename, what, err)
		}
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if err := c.writeRef(t, repo, revision, meta.commit); err != nil {
		return "", err
	}
	snapPath := filepath.Join(repoDir, "snapshots", meta.commit, filepath.FromSlash(filename))
	blobPath := filepath.Join(repoDir, "blobs", meta.etag)
	if !fileExists(blobPath) {
		if err := c.fetchBlob(ctx, meta, blobPath); err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
	}
	if err := linkSnapshot(blobPath, snapPath); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return snapPath, nil
}

func isConnErr(err error) bool {
	var opErr *net.OpError
	var dnsErr *net.DNSError
	return errors.As(err, &opErr) || errors.As(err, &dnsErr)
}

func (c *Client) fromCache(t RepoType, repo, revision, filename, what string, cause error) (string, error) {
	if commit, ok := c.cachedCommit(t, repo, revision); ok {
		if p := filepath.Join(c.RepoDir(t, repo), "snapshots", commit, filepath.FromSlash(filename)); fileExists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", what, cause)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// fetchBlob streams the file into blobs/<etag>.incomplete, checks size and
// content hash, and renames it into place.
func (c *Client) fetchBlob(ctx context.Context, meta fileMeta, blobPath string) error {
	if err := os.MkdirAll(filepath.Dir(blobPath), 0o755); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, meta.location, nil)
	if err != nil {
		return err
	}
	c.authorize(req) // only added when the location is the hub itself
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := statusError(resp); err != nil {
		return err
	}
	tmpPath := blobPath + ".incomplete"
	f, err := os.Create(tmpPath)
	if err != nil {
		return err
	}
	defer os.Remove(tmpPath)
	var h hash.Hash
	var wantSum string
	switch {
	case len(meta.etag) == 64 && isHex(meta.etag):
		h, wantSum = sha256.New(), meta.etag // LFS: the ETag is the SHA-256
	case len(meta.etag) == 40 && isHex(meta.etag):
		h, wantSum = sha1.New(), meta.etag // git blob id: sha1("blob <size>\0" + data)
		if meta.size > 0 {
			fmt.Fprintf(h, "blob %d\x00", meta.size)
		} else {
			h = nil // size unknown: cannot form the git header
		}
	}
	var w io.Writer = f
	if h != nil {
		w = io.MultiWriter(f, h)
	}
	n, err := io.Copy(w, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if meta.size > 0 && n != meta.size {
		return fmt.Errorf("downloaded %d bytes, the hub announced %d", n, meta.size)
	}
	if h != nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != wantSum {
			return fmt.Errorf("content hash %s does not match the ETag %s", got, wantSum)
		}
	}
	return os.Rename(tmpPath, blobPath)
}

func isHex(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// linkSnapshot points snapshots/<commit>/<path> at the blob with a relative
// symlink, replacing a stale link.
func linkSnapshot(blobPath, snapPath string) error {
	if err := os.MkdirAll(filepath.Dir(snapPath), 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(snapPath), blobPath)
	if err != nil {
		return err
	}
	if cur, err := os.Readlink(snapPath); err == nil && cur == rel {
		return nil
	}
	tmp := snapPath + ".link-tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(rel, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, snapPath)
}

// Snapshot downloads the files of a repo at a revision that keep says to
// keep (nil keeps all) and returns the snapshot folder.
func (c *Client) Snapshot(ctx context.Context, t RepoType, repo, revision string, keep func(string) bool) (string, error) {
	info, err := c.Resolve(ctx, t, repo, revision)
	if err != nil {
		return "", err
	}
	for _, f := range info.Files {
		if keep != nil && !keep(f) {
			continue
		}
		if _, err := c.Download(ctx, t, repo, info.Commit, f); err != nil {
			return "", err
		}
	}
	return filepath.Join(c.RepoDir(t, repo), "snapshots", info.Commit), nil
}

// DatasetFiles resolves a dataset repo revision (for package datasets).
func (c *Client) DatasetFiles(ctx context.Context, repo, revision string) (string, []string, error) {
	info, err := c.Resolve(ctx, Dataset, repo, revision)
	return info.Commit, info.Files, err
}

// DownloadDatasetFile fetches one file of a dataset repo at a commit (for
// package datasets).
func (c *Client) DownloadDatasetFile(ctx context.Context, repo, commit, file string) (string, error) {
	return c.Download(ctx, Dataset, repo, commit, file)
}
