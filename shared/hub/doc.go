// Package hub downloads model and dataset repositories from the Hugging Face
// Hub into the same cache huggingface_hub uses, so files fetched by eft and
// by Python tools are shared:
//
//	$HF_HUB_CACHE/models--owner--name/
//	    blobs/<etag>                     file contents, named by the hub's ETag
//	    snapshots/<commit>/<path>        relative symlink to ../../blobs/<etag>
//	    refs/<revision>                  the commit a branch or tag resolved to
//
// It resolves a revision to a commit and a file list through the hub API
// (/api/{models,datasets}/{id}/revision/{rev}, /tree/ for listings), fetches
// files through /{id}/resolve/{rev}/{path} (datasets under /datasets/),
// reading X-Repo-Commit, ETag / X-Linked-Etag and X-Linked-Size and following
// LFS redirects to their CDN without the token. It honours HF_ENDPOINT,
// HF_TOKEN (or the token file), HF_HOME / HF_HUB_CACHE and HF_HUB_OFFLINE,
// and serves pinned files from the cache without touching the network.
// Downloads are checked against their ETag (SHA-256 for LFS files, the git
// blob SHA-1 otherwise).
package hub
