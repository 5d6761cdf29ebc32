module github.com/eftml/eft/trainer

go 1.26

require (
	github.com/ebitengine/purego v0.11.3 // indirect
	github.com/eftml/eft/events v0.0.0
	github.com/eftml/eft/shared v0.0.0
)

replace github.com/eftml/eft/shared => ../shared

replace github.com/eftml/eft/events => ../events
