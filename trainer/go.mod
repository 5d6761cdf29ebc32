module github.com/eftml/eft/trainer

go 1.26
