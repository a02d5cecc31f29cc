// xmpp.js (@xmpp/client, a third-party XMPP client) as a scripted peer for
// the integration tests: runs `node test/js/xmppjs_client.mjs` with options,
// reads the JSON event lines it prints and enforces a deadline (kill by pid).
//
// The script logs in over RFC 7395 WebSocket only (ws:// or wss://), can send
// initial presence, one chat message and one IQ, and can wait for incoming
// stanzas; see test/js/xmppjs_client.mjs for the events and exit codes.
// Node and the npm packages come from `scripts/setup.sh test`
// (test/js/package-lock.json).
#pragma once
#include "process.hpp"

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xmpp::testbed {

/// One line of the script's stdout: {"event":NAME, key:value...}.
struct xmppjs_event {
    /// "online", "presence_sent", "message_sent", "iq_result", "iq_error",
    /// "stanza", "error" or "offline".
    std::string name;
    /// Every other key. The script sends strings only; a number, true, false
    /// or null arrives as its JSON text.
    std::map<std::string, std::string> fields;

    /// The field `key`, or "" when there is none.
    const std::string& get(const std::string& key) const;
};

/// Parses one line: a flat JSON object (string, number, true/false/null
/// values; no nesting) with a string member "event". Returns nullopt for
/// anything else (diagnostics on stderr, a truncated line), never throws on
/// bad input. Handles every JSON string escape, \\u with surrogate pairs too.
std::optional<xmppjs_event> parse_xmppjs_event(std::string_view line);

/// What one run of the script does. Everything empty/0 is left out.
struct xmppjs_options {
    /// ws://host:port/path or wss://...; the script refuses anything else.
    std::string service;
    /// XMPP domain; empty = the service URL's host.
    std::string domain;
    std::string username;
    std::string password;
    /// Requested resource; empty = the server picks.
    std::string resource;
    /// Force a SASL mechanism (xmpp.js implements SCRAM-SHA-1, PLAIN,
    /// ANONYMOUS); empty = xmpp.js picks (SCRAM-SHA-1 first).
    std::string mechanism;
    /// Send initial presence once online (needed to receive messages sent to
    /// the bare JID).
    bool presence = false;
    /// Send <message to=message_to type='chat'><body>message_body</body>.
    std::string message_to;
    std::string message_body = "hello from xmpp.js";
    /// Send an IQ to iq_to and wait for its reply.
    std::string iq_to;
    std::string iq_type = "get";
    /// The IQ's child element; empty = <ping xmlns='urn:xmpp:ping'/>.
    std::string iq_payload;
    std::string iq_id = "xmppjs-iq-1";
    /// An <iq type='error'/> reply is an event (iq_error), not a failure.
    bool iq_error_ok = false;
    /// Then wait for this many incoming stanzas named wait_for
    /// ("message", "presence", "iq" or "any").
    unsigned wait = 0;
    std::string wait_for = "message";
    /// The script's own deadline for the whole run (it exits with status 2
    /// and an error event). The fixture kills it kill_grace later.
    std::chrono::milliseconds timeout = std::chrono::seconds(10);
    std::chrono::milliseconds kill_grace = std::chrono::seconds(5);
    /// Every stanza and nonza in and out on the script's stderr (in the log).
    bool trace = false;
    /// More arguments for the script, appended as they are.
    std::vector<std::string> extra_args;
    /// Where stdout+stderr go; empty = a temporary file removed afterwards.
    std::filesystem::path log_file;
    /// Directory of xmppjs_client.mjs and its node_modules; empty =
    /// $XMPP_TESTBED_JS_DIR, else the source tree's test/js (fixed at build
    /// time).
    std::filesystem::path js_dir;
    /// The Node.js program (searched in PATH).
    std::string node = "node";
};

/// How a run ended.
struct xmppjs_result {
    /// The script's exit code (0 success, 1 error, 2 its own timeout, 64 bad
    /// arguments); -1 when it was killed or a signal ended it.
    int exit_status = -1;
    /// The fixture's deadline (timeout + kill_grace) passed and it was killed.
    bool killed = false;
    /// Every event line, in order.
    std::vector<xmppjs_event> events;
    /// Everything it wrote (stdout and stderr), for failure messages.
    std::string output;

    /// The first event named `name`, or nullptr.
    const xmppjs_event* find(std::string_view name) const;
    /// All events named `name`.
    std::vector<const xmppjs_event*> all(std::string_view name) const;
};

/// One running script. Not thread safe; one thread drives it.
class xmppjs_client {
public:
    /// Starts node with the script and `opts`. Throws std::runtime_error when
    /// node cannot be started (a missing node_modules shows only as a failed
    /// run: check xmppjs_available() first).
    explicit xmppjs_client(xmppjs_options opts);
    xmppjs_client(const xmppjs_client&) = delete;
    xmppjs_client& operator=(const xmppjs_client&) = delete;
    /// Kills a script still running (by pid) and removes a temporary log.
    ~xmppjs_client();

    /// Waits until an event named `name` has arrived (earlier ones count),
    /// the script exited, or `timeout` passed. Returns the event or nullopt.
    std::optional<xmppjs_event> wait_for(std::string_view name, std::chrono::milliseconds timeout);
    /// Waits until the script exits, killing it at its deadline, and returns
    /// the result. Call once.
    xmppjs_result wait();
    /// The events read so far.
    const std::vector<xmppjs_event>& events() const noexcept { return events_; }
    pid_t pid() const noexcept { return proc_.pid(); }

private:
    /// Reads new complete lines from the log; false once the script exited
    /// and everything it wrote has been read.
    bool poll();

    xmppjs_options opts_;
    bool temp_log_ = false;
    std::chrono::steady_clock::time_point deadline_;
    process proc_;
    bool exited_ = false;
    std::size_t read_ = 0;
    std::string partial_;
    std::string output_;
    std::vector<xmppjs_event> events_;
};

/// Runs the script to completion (see xmppjs_client).
xmppjs_result run_xmppjs(const xmppjs_options& opts);

/// The script's directory: `given`, else $XMPP_TESTBED_JS_DIR, else the
/// source tree's test/js.
std::filesystem::path xmppjs_dir(const std::filesystem::path& given = {});

/// True when node (>= 18) runs and the script and its npm packages are in
/// place. Otherwise false, and `why` (if given) says what is missing and how
/// to install it, so that a test can fail with that message instead of
/// skipping.
bool xmppjs_available(std::string* why = nullptr, const xmppjs_options& opts = {});

} // namespace xmpp::testbed
