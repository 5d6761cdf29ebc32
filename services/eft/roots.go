package main

// The images in infra/ are FROM scratch: no /etc/ssl/certs. Without a system
// certificate pool, Go uses this embedded copy of the Mozilla roots, so https
// datasets and the Hugging Face hub work there as on a full system (where the
// system pool is used and this is never read).
import _ "golang.org/x/crypto/x509roots/fallback"
