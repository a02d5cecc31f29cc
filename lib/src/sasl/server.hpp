// The receiving (server) side of SASL mechanisms, sans-io: each mechanism
// turns the client's messages into challenges, asks for what it needs
// (a SCRAM verifier, a PLAIN password check) and ends in success or a
// failure condition. No I/O, no Asio, no base64: the stream feature
// (lib/src/negotiation/server_sasl.cpp) does the <auth/>, <challenge/>,
// <response/>, <success/> and <failure/> elements and the awaited lookups;
// test/lib/sasl/server_test.cpp and fuzz/scram_server_fuzzer.cpp drive the
// machines directly.
#pragma once

#include <xmpp/sasl.hpp>

#include "detail.hpp" // scram_hash

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xmpp::sasl::detail {

/// What a server mechanism wants next.
struct server_step {
    enum class action : std::uint8_t {
        challenge,      ///< send `data` as a <challenge/>; feed the <response/> to respond()
        lookup,         ///< await scram_lookup(identity().username, `data` = hash name); give it to found()
        check_password, ///< await a check of (identity().username, `data` = password, identity().authzid);
                        ///< give the verdict to checked()
        success,        ///< send <success/> with `data` (additional data, RFC 6120 6.3.10; may be empty)
        failure,        ///< send <failure/> with `condition`; the exchange is over
    };
    action next = action::failure;
    /// Raw bytes (see `next`).
    std::string data;
    /// The failure condition (RFC 6120 6.5).
    errc condition = errc::not_authorized;
    /// Why, in a few words safe to show the client (for SCRAM the RFC 5802
    /// 7 server-error-value, e.g. "invalid-proof"); "" for none.
    std::string text;

    static server_step challenge(std::string d) { return {action::challenge, std::move(d), {}, {}}; }
    static server_step success(std::string d) { return {action::success, std::move(d), {}, {}}; }
    static server_step failure(errc c, std::string t) { return {action::failure, {}, c, std::move(t)}; }
};

/// One server-side exchange of one mechanism; not thread safe.
///
/// start() once, then the call each step asks for. After a failure (or a
/// success) the object must not be called again except to destroy it; a
/// call out of turn fails with errc::malformed_request.
class server_mechanism {
public:
    virtual ~server_mechanism() = default;

    /// The mechanism name, e.g. "SCRAM-SHA-256-PLUS".
    virtual std::string_view name() const noexcept = 0;

    /// The initial response of <auth/> (raw), or nullopt when the client
    /// sent none (RFC 6120 6.4.2: the mechanism then starts with an empty
    /// challenge when it needs the client to speak first).
    virtual server_step start(std::optional<std::string_view> initial_response) = 0;

    /// The client's response to a challenge step (raw).
    virtual server_step respond(std::string_view response) = 0;

    /// After a lookup step: the user's verifier, nullopt for no such user.
    virtual server_step found(std::optional<scram_secret> secret) {
        (void)secret;
        return server_step::failure(errc::malformed_request, "out of turn");
    }

    /// After a check_password step: whether the password is right.
    virtual server_step checked(bool ok) {
        (void)ok;
        return server_step::failure(errc::malformed_request, "out of turn");
    }

    /// Who the exchange is about: username and authzid are filled as soon as
    /// the client named them (they are what lookup and check_password
    /// steps refer to); the identity is authenticated only after a success
    /// step.
    virtual const server_identity& identity() const noexcept = 0;
};

/// What a SCRAM server mechanism knows of the stream.
struct scram_server_config {
    /// Channel-binding types accepted in a "p=" GS2 flag, i.e. those
    /// advertised (XEP-0440) and with data on this stream. A -PLUS
    /// mechanism needs at least one.
    std::vector<std::string> binding_types;
    /// The binding data of a type (the transport's channel_binding()).
    std::function<std::vector<std::uint8_t>(std::string_view type)> binding;
    /// Whether any -PLUS mechanism was offered on this stream: a client that
    /// sends 'y' (RFC 5802 6: "I could bind, I think you cannot") is then
    /// the victim of a downgrade and the exchange fails.
    bool plus_offered = false;
    /// Largest client message accepted.
    std::size_t max_message_bytes = 4096;
    /// Test hook: the server's part of the nonce; "" = 24 random bytes in
    /// base64 (32 characters) from the TLS library's CSPRNG.
    std::string server_nonce;
};

/// A SCRAM server mechanism: "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512",
/// each optionally with "-PLUS" (RFC 5802 5, 7; RFC 7677). nullptr for
/// another name, or -PLUS with no binding type in `cfg`.
///
/// The username is unescaped (=2C, =3D), SASLprep'd as a query string (RFC
/// 5802 5.1) and prepared as a JID localpart (RFC 7622 3.3); that form is
/// identity().username and what the lookup step asks for. A name that
/// cannot be a localpart is not looked up: the exchange goes on with a fake
/// verifier, as for an unknown user.
///
/// Unknown users (found(nullopt)) get a salt derived from a per-process
/// secret and the username (HMAC-SHA-256), so that asking twice gives the
/// same salt, and iterations 4096; the exchange then fails at the client
/// proof with "invalid-proof", exactly like a wrong password (RFC 5802 7,
/// server-error-value: the real reason may be withheld to prevent
/// information disclosure).
std::unique_ptr<server_mechanism> make_scram_server(std::string_view name, const scram_server_config& cfg);

/// PLAIN (RFC 4616): "[authzid] NUL authcid NUL passwd", each part valid
/// UTF-8, authcid and passwd not empty, at most max_message_bytes in all.
/// The authcid is SASLprep'd (query) and prepared as a JID localpart; the
/// password is SASLprep'd (query); then a check_password step.
std::unique_ptr<server_mechanism> make_plain_server(std::size_t max_message_bytes = 4096);

/// ANONYMOUS (RFC 4505): one message, the optional trace (valid UTF-8, at
/// most 255 characters); success right away, no username, no authzid.
std::unique_ptr<server_mechanism> make_anonymous_server();

/// The salt make_scram_server() gives an unknown `username` for `h` (the
/// test of indistinguishability reads it).
std::string fake_salt(scram_hash h, std::string_view username);

/// A fresh localpart for an ANONYMOUS session: "anon-" and 32 lower-case
/// hex digits (128 random bits); "" when the CSPRNG fails.
std::string random_localpart();

/// The account a SASL authentication identity names: SASLprep (RFC 4013,
/// query) then the JID localpart profile (RFC 7622 3.3, PRECIS
/// UsernameCaseMapped, no " & ' / : < > @); nullopt when either refuses.
std::optional<std::string> account_name(std::string_view authcid);

// --- cyrus.cpp ---------------------------------------------------------------

/// Checks a PLAIN password with Cyrus SASL's server side: sasl_checkpass()
/// for `user` in realm `domain` (sasl_server_new's user_realm), with
/// pwcheck_method auxprop, auxprop_plugin sasldb and sasldb_path
/// `sasldb_path` (given by a per-connection SASL_CB_GETOPT). Blocking: the
/// sasldb plugin opens and reads the Berkeley DB file (a few microseconds
/// for a local file). Initialises Cyrus's server side once per process
/// (sasl_server_init), with the same plugin filter as the client side, so
/// no plugin that links OpenSSL's libcrypto is loaded in the BoringSSL
/// build. Returns true when the password is right; false for a wrong
/// password or an unknown user; false with `ec` set
/// (errc::temporary_auth_failure, Cyrus's text) when the check could not be
/// made (no such file, no sasldb plugin). Thread safe.
bool cyrus_checkpass(const std::string& sasldb_path, const std::string& domain, std::string_view user,
                     std::string_view password, error_code& ec);

} // namespace xmpp::sasl::detail
