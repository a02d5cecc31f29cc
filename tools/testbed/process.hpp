// Child processes for throwaway servers: spawned with posix_spawn, waited for
// on a TCP/UDP port, stopped by pid (SIGTERM, then SIGKILL after a grace time).
#pragma once
#include <chrono>
#include <string>
#include <vector>
#include <sys/types.h>

namespace xmpp::testbed {

/// One child process. Stopping is by pid, never by name.
class process {
public:
    process() = default;
    /// Starts `argv[0]` (searched in PATH) with `argv`, extra `env` entries
    /// ("KEY=VALUE") added to ours, stdout+stderr appended to `log_file`.
    /// Throws std::runtime_error when the program cannot be started.
    process(const std::vector<std::string>& argv, const std::string& log_file,
            const std::vector<std::string>& env = {});
    process(process&& o) noexcept : pid_(o.pid_), status_(o.status_) { o.pid_ = -1; }
    process& operator=(process&& o) noexcept;
    ~process() { stop(); }

    pid_t pid() const noexcept { return pid_; }
    /// True while the child has not exited (reaps it if it has).
    bool running();
    /// SIGTERM, wait up to `grace`, then SIGKILL; always reaps. Idempotent.
    void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(3000)) noexcept;
    /// Once running() returned false or stop() ran: the child's exit code, or
    /// -1 when a signal ended it (a stop() that had to signal it included) or
    /// it is unknown. -1 before that.
    int exit_status() const noexcept { return status_; }

private:
    pid_t pid_ = -1;
    int status_ = -1;
};

/// Runs a command to completion; returns its exit status (-1 if it could not
/// run or was killed). Output goes to `log_file` when given.
int run_command(const std::vector<std::string>& argv, const std::string& log_file = {},
                const std::vector<std::string>& env = {},
                std::chrono::milliseconds timeout = std::chrono::seconds(60));

/// A loopback TCP port nobody listens on now (bind to port 0, read, close).
unsigned short free_tcp_port();

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
/// Returns false on timeout, or early when `p` (if given) has exited.
bool wait_for_tcp_port(unsigned short port, std::chrono::milliseconds timeout, process* p = nullptr);

} // namespace xmpp::testbed
