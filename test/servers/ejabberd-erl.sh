#!/bin/sh
# Runs the Erlang VM of a throwaway ejabberd with the soft open-files limit
# raised to the hard one: the idle-sessions benchmark holds 1000+ sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec /usr/bin/erl "$@"
