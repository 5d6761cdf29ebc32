module github.com/eftml/eft/services

go 1.26
