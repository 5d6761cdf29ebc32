module github.com/eftml/eft/shared

go 1.26
