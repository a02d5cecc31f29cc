// What the server (lib/src/server.cpp) needs of a session on the receiving
// side, without seeing session_impl's definition (lib/src/session.cpp): the
// two translation units stay apart, each with its own Asio instantiations.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <xmpp/error.hpp>
#include <xmpp/negotiator.hpp>
#include <xmpp/server.hpp>
#include <xmpp/session.hpp>
#include <xmpp/stream_error.hpp>
#include <xmpp/tls.hpp>
#include <xmpp/websocket.hpp>

namespace xmpp::detail {

class session_impl;

/// How a received connection is negotiated.
struct received_setup {
    std::string domain;
    listener_kind kind = listener_kind::tcp;
    std::optional<tls::context> tls; // direct_tls / wss handshakes
    ws::options ws;
    std::string see_other_uri;
    std::shared_ptr<xmpp::negotiator> negotiation;
    std::chrono::milliseconds handshake_timeout{30000};
    std::chrono::milliseconds step_timeout{10000};
    /// Called once on the session's strand when the session ends (after
    /// negotiation or during it): the server drops its registry entries.
    std::function<void(session_impl&)> on_end;
};

/// A session on a new strand of `ex`, on the receiving side.
std::shared_ptr<session_impl> make_received(asio::any_io_executor ex, session_options opts, received_setup setup);
/// Runs the handshakes and the negotiation over `sock`; `done` gets the
/// outcome (on the session's strand). Reading does not start until
/// begin_reading().
void start_received(const std::shared_ptr<session_impl>& s, asio::ip::tcp::socket sock,
                    asio::any_completion_handler<void(error_code)> done);
/// Starts the stanza phase of a negotiated received session.
void begin_reading(const std::shared_ptr<session_impl>& s);
/// Ends `s` with a stream error (from any thread): a resource conflict,
/// the server's stop().
void kick(const std::shared_ptr<session_impl>& s, stream_errc cond, std::string text);
/// The session object a user owns.
session make_session(std::shared_ptr<session_impl> s);
/// The session behind a negotiation_stream it handed to a feature (the
/// receiving bind feature's claim); null for another stream.
std::shared_ptr<session_impl> shared_of(negotiation_stream& s) noexcept;
/// last_error() of `s`.
error_info last_error_of(const session_impl& s);
asio::any_io_executor executor_of(const session_impl& s);

} // namespace xmpp::detail
