//go:build !linux

package main

// releaseBinaryPages is Linux-only (madvise, fadvise).
func releaseBinaryPages() {}
