module github.com/podkit/podkit/bench

go 1.26.8
