module github.com/eftml/eft/trainer

go 1.26.0

require (
	github.com/eftml/eft/events v0.0.0
	github.com/eftml/eft/shared v0.0.0
)

require (
	github.com/ebitengine/purego v0.11.3 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/eftml/eft/shared => ../shared

replace github.com/eftml/eft/events => ../events
