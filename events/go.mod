module github.com/eftml/eft/events

go 1.26
