//go:build !linux

package tcpopt

import "syscall"

func control(Options) func(network, address string, c syscall.RawConn) error { return nil }
