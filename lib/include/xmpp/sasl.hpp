// SASL mechanisms (RFC 4422) for XMPP authentication (RFC 6120 6), sans-io:
// each mechanism turns server challenges into client responses and nothing
// else; the <auth/>/<challenge/>/<response/>/<success/>/<failure/> elements
// and their base64 belong to the session.
//
// SCRAM-SHA-1/-256/-512 and their -PLUS variants (RFC 5802, RFC 7677,
// draft-melnikov-scram-sha-512) are native, on the TLS library's crypto, and
// so is ANONYMOUS (RFC 4505). PLAIN, EXTERNAL and GSSAPI go through Cyrus
// SASL; Cyrus never runs a SCRAM, DIGEST-MD5 or ANONYMOUS of its own.
//
// PLAIN is never used on a stream without TLS, nor over TLS whose peer was
// not authenticated (the password would go to whoever answered).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

namespace xmpp::sasl {

using boost::system::error_code;

/// Why authentication failed. Values 1..11 are the <failure/> conditions of
/// RFC 6120 6.5 in RFC order (received from the server); the rest are
/// detected by the client. Value 0 is reserved for "no error".
enum class errc {
    aborted = 1,            ///< RFC 6120 6.5.1
    account_disabled,       ///< 6.5.2
    credentials_expired,    ///< 6.5.3
    encryption_required,    ///< 6.5.4
    incorrect_encoding,     ///< 6.5.5
    invalid_authzid,        ///< 6.5.6
    invalid_mechanism,      ///< 6.5.7
    malformed_request,      ///< 6.5.8
    mechanism_too_weak,     ///< 6.5.9
    not_authorized,         ///< 6.5.10
    temporary_auth_failure, ///< 6.5.11
    // client side
    no_acceptable_mechanism,      ///< nothing the server offers is usable here
    plain_without_tls,            ///< PLAIN refused on a stream without TLS
    bad_server_message,           ///< malformed challenge or success data
    bad_server_nonce,             ///< SCRAM: server nonce does not extend ours
    bad_server_signature,         ///< SCRAM: v= does not match (server not authenticated)
    server_error,                 ///< SCRAM: server-final carried e=
    iteration_count_out_of_range, ///< SCRAM: i= outside options' bounds
    channel_binding_unavailable,  ///< -PLUS without usable binding data
    unexpected_success,           ///< <success/> before the exchange finished
    mechanism_error,              ///< Cyrus SASL failed (message() carries its text)
    invalid_credentials,          ///< SASLprep (RFC 4013) rejects the username or password
    invalid_configuration,        ///< options out of range (e.g. SCRAM iteration bounds)
    plain_unverified_peer,        ///< PLAIN refused: the TLS peer's certificate was not verified
};

/// The category of errc; name() is "xmpp.sasl".
///
/// Errors from Cyrus are errc::mechanism_error, compare equal to it and to
/// this category, yet message() returns Cyrus's sasl_errdetail() text: they
/// use interned category objects that share this category's id (Boost.System
/// treats categories with equal ids as equal).
const boost::system::error_category& sasl_category() noexcept;

/// Makes an error_code of sasl_category().
inline error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), sasl_category()};
}

/// The RFC 6120 6.5 element name of a condition ("not-authorized"); "" for the
/// client-side values, which have no element.
std::string_view condition_name(errc e) noexcept;

/// The errc for the element name of a <failure/> child. A name that is not a
/// defined condition (or "") gives errc::not_authorized: the failure stands
/// and "credentials rejected" is the least specific reading of it.
errc from_condition(std::string_view element_name) noexcept;

/// Who authenticates. `authzid` is empty unless the user acts for another
/// identity (RFC 6120 6.3.8).
struct credentials {
    std::string username;
    std::string password;
    std::string authzid;
};

/// What a mechanism knows about the transport (the session fills it from
/// xmpp::transport).
struct tls_state {
    /// TLS in place.
    bool secure = false;
    /// The TLS peer's certificate was verified, chain and name
    /// (tls::connection_info::peer_verified); false with
    /// tls::client_options::insecure_skip_verify. PLAIN needs secure and
    /// this: it hands the password to the peer. SCRAM does not reveal it.
    bool peer_verified = false;
    /// 0x0303 = TLS 1.2, 0x0304 = TLS 1.3, 0 = none.
    int tls_version = 0;
    /// Channel-binding data for "tls-exporter", "tls-server-end-point" or
    /// "tls-unique"; an empty vector (or no function) if unavailable.
    std::function<std::vector<std::uint8_t>(std::string_view type)> binding;
    /// The XEP-0440 <sasl-channel-binding/> types the server advertised;
    /// empty if it advertised none.
    std::vector<std::string> server_binding_types;
};

/// One authentication exchange of one mechanism; sans-io, not thread safe.
///
/// The session calls initial_response() once, then respond() for each
/// challenge, then finish() on <success/>. After any call sets `ec` the
/// exchange has failed: the session aborts it (RFC 6120 6.4.4) and must not
/// call the object again except to destroy it.
class mechanism {
public:
    virtual ~mechanism() = default;

    /// The name as sent in <auth mechanism='..'/>, e.g. "SCRAM-SHA-256-PLUS".
    virtual std::string_view name() const noexcept = 0;

    /// The initial response as raw bytes (the session base64-encodes it; an
    /// empty string is sent as "="). nullopt: the mechanism has none.
    virtual std::optional<std::string> initial_response(error_code& ec) = 0;

    /// Raw challenge bytes in, raw response bytes out. A malformed challenge
    /// sets ec (errc::bad_server_message or a more specific value).
    virtual std::string respond(std::string_view challenge, error_code& ec) = 0;

    /// The <success/> payload (raw, empty if none). SCRAM verifies the server
    /// signature here unless it came as the last challenge (RFC 6120 6.3.10
    /// allows both). Sets ec when the server is not authenticated by it
    /// (errc::bad_server_signature, errc::unexpected_success...).
    virtual void finish(std::string_view success_data, error_code& ec) = 0;

    /// True after a finish() that succeeded.
    virtual bool finished() const noexcept = 0;

    /// The channel-binding type in use ("tls-exporter"...), "" for none.
    virtual std::string_view channel_binding() const noexcept { return {}; }
};

/// How select() chooses.
struct options {
    /// Allowed names in the user's order of preference; empty = the default
    /// order (see candidates()).
    std::vector<std::string> mechanisms;
    /// ANONYMOUS (RFC 4505) may be chosen.
    bool allow_anonymous = false;
    /// A client certificate is in place: EXTERNAL (XEP-0178) comes first.
    bool use_external = false;
    /// SCRAM iteration-count bounds (RFC 7677 4: at least 4096); the maximum
    /// stops a hostile server from making the client burn CPU. The maximum
    /// must not exceed INT_MAX (PBKDF2's count is an int in OpenSSL) nor be
    /// below the minimum: select() fails with errc::invalid_configuration.
    std::uint32_t min_iterations = 4096;
    std::uint32_t max_iterations = 1'000'000;
    /// SCRAM: keep the salted password of a (hash, password, salt,
    /// iterations) already derived (RFC 5802 5.1 lets a client store it),
    /// in memory for the life of the process, at most 64 entries, so that
    /// reconnecting skips PBKDF2 (~1 ms at 4096 iterations). Off by default:
    /// the cache is a password equivalent held in memory.
    bool cache_salted_password = false;
};

/// The mechanisms select() would try, best first: `offered` (the server's
/// <mechanisms/>) filtered by what is known, usable on this transport and
/// allowed by `opts`. Default order (when opts.mechanisms is empty):
///
///   EXTERNAL (only with opts.use_external), SCRAM-SHA-512-PLUS,
///   SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS, SCRAM-SHA-512, SCRAM-SHA-256,
///   SCRAM-SHA-1, GSSAPI (only if Cyrus loaded its plugin: in the BoringSSL
///   build only when no MIT krb5 plugin or GSS mechanism module could bring
///   OpenSSL's libcrypto in), PLAIN (only on a secure stream whose peer was
///   verified), ANONYMOUS (only with allow_anonymous; native, empty trace).
///
/// With opts.mechanisms the order is the user's, restricted to that list;
/// the conditions above still apply. -PLUS needs binding data of a usable
/// type: under TLS 1.3 only a type the server advertised (XEP-0440:
/// tls-exporter, then tls-server-end-point); under TLS 1.2 an advertised
/// type if any (tls-exporter, tls-server-end-point, tls-unique), else
/// tls-unique (RFC 5802 6) unless the server listed types without it.
/// The stream must be secure for any -PLUS. Password mechanisms (SCRAM, PLAIN) need a
/// username. Names this library does not know are ignored. Thread safe.
std::vector<std::string> candidates(std::span<const std::string> offered, const credentials& creds,
                                    const tls_state& tls, const options& opts);

/// Creates the first of candidates() that can be created. A non-PLUS SCRAM
/// sends the GS2 flag 'y' when the client could bind but the server offered
/// no SCRAM -PLUS mechanism (RFC 5802 6, downgrade protection), else 'n'.
/// `domain` is the server's domain, for Cyrus (GSSAPI's service principal
/// is xmpp/<domain>). On failure returns null and sets ec:
/// errc::no_acceptable_mechanism when nothing offered is usable,
/// errc::invalid_credentials when SASLprep refuses the username or password
/// (no weaker mechanism is tried then), errc::invalid_configuration when
/// opts' iteration bounds are unusable. Thread safe.
std::unique_ptr<mechanism> select(std::span<const std::string> offered, const credentials& creds,
                                  const tls_state& tls, const options& opts, std::string_view domain,
                                  error_code& ec);

/// Settings of make_scram() beyond the mechanism name.
struct scram_config {
    std::uint32_t min_iterations = 4096;
    std::uint32_t max_iterations = 1'000'000;
    /// For a -PLUS name: the binding type to use; "" = choose as select()
    /// does, falling back to the TLS version's default (TLS 1.3:
    /// tls-exporter, RFC 9266; TLS 1.2: tls-unique).
    std::string binding_type;
    /// For a non-PLUS name: send 'y' instead of 'n' when binding data is
    /// available, i.e. the server offered no -PLUS variant (RFC 5802 6).
    bool server_lacks_plus = false;
    /// See options::cache_salted_password.
    bool cache_salted_password = false;
};

/// Creates a native SCRAM mechanism: "SCRAM-SHA-1", "SCRAM-SHA-256",
/// "SCRAM-SHA-512", each optionally with "-PLUS". Sets ec and returns null
/// for an unknown name (errc::invalid_mechanism), a username or password
/// SASLprep rejects or an empty username (errc::invalid_credentials),
/// -PLUS without binding data (errc::channel_binding_unavailable), or
/// max_iterations > INT_MAX or min_iterations > max_iterations
/// (errc::invalid_configuration). Thread safe.
std::unique_ptr<mechanism> make_scram(std::string_view name, const credentials& creds,
                                      const tls_state& tls, error_code& ec);
std::unique_ptr<mechanism> make_scram(std::string_view name, const credentials& creds,
                                      const tls_state& tls, const scram_config& cfg,
                                      error_code& ec);

/// Creates the native ANONYMOUS mechanism (RFC 4505). Its initial response
/// is the empty trace (sent as "=", RFC 6120 6.4.2): a trace would only tell
/// the server something about this machine (Cyrus's sends
/// "anonymous@<host name>"). Thread safe.
std::unique_ptr<mechanism> make_anonymous();

/// Creates a Cyrus SASL client mechanism: "PLAIN", "EXTERNAL" or "GSSAPI"
/// (only these: Cyrus's own SCRAM, DIGEST-MD5 and ANONYMOUS are never used).
/// Initialises Cyrus once per process. Sets ec and returns null for another
/// name (errc::invalid_mechanism), PLAIN on an insecure stream
/// (errc::plain_without_tls) or over TLS with an unverified peer
/// (errc::plain_unverified_peer), or a mechanism whose plugin is not loaded
/// (errc::mechanism_error; for GSSAPI in the BoringSSL build the text names
/// the krb5 or GSS module that would bring OpenSSL's libcrypto in).
/// `domain` is the server's domain (sasl_client_new's serverFQDN, service
/// "xmpp"). Thread safe.
std::unique_ptr<mechanism> make_cyrus(std::string_view name, const credentials& creds,
                                      const tls_state& tls, std::string_view domain,
                                      error_code& ec);

/// The mechanism names Cyrus's loaded client plugins provide (after its
/// one-time initialisation), e.g. {"ANONYMOUS", "EXTERNAL", "GSSAPI",
/// "PLAIN", ...}; make_cyrus() runs only some of them. Thread safe.
std::vector<std::string> cyrus_mechanisms();

// --- Receiving (server) side ---------------------------------------------------
//
// The server side of the same mechanisms: SCRAM-SHA-1/-256/-512 and their
// -PLUS variants natively from stored verifiers (the password never reaches
// the server side), PLAIN checked by a user callback or by Cyrus SASL's
// sasl_checkpass against a sasldb file, and ANONYMOUS. The receiving SASL
// stream feature (xmpp::sasl_server_feature) drives them.

/// A SCRAM verifier (RFC 5802 3): what a server stores instead of the
/// password, for one hash function.
struct scram_secret {
    std::string salt;                     ///< raw salt bytes
    std::uint32_t iterations = 4096;      ///< PBKDF2 count (RFC 7677 4: at least 4096)
    std::vector<std::uint8_t> stored_key; ///< H(ClientKey)
    std::vector<std::uint8_t> server_key; ///< HMAC(SaltedPassword, "Server Key")
};

/// Derives the verifier of `password` for `hash` ("SHA-1", "SHA-256" or
/// "SHA-512") after SASLprep (RFC 4013, a stored string: RFC 5802 2.2). An
/// empty `salt` gets 16 random bytes from the TLS library's CSPRNG; a
/// given one (raw bytes) is used as is. Sets ec (errc::invalid_mechanism
/// for another hash, errc::invalid_credentials when SASLprep refuses the
/// password, errc::invalid_configuration for iterations of 0 or above
/// INT_MAX, errc::temporary_auth_failure when the CSPRNG fails) and returns
/// an empty verifier. Costs one PBKDF2 of `iterations` rounds. Thread safe.
scram_secret make_scram_secret(std::string_view hash, std::string_view password, std::string_view salt,
                               std::uint32_t iterations, error_code& ec);

/// Who a finished server-side exchange authenticated.
struct server_identity {
    std::string mechanism; ///< e.g. "SCRAM-SHA-256-PLUS"
    /// The authentication identity as an account name: SASLprep'd (RFC
    /// 4013, a query string) and prepared as a JID localpart (RFC 7622 3.3,
    /// PRECIS UsernameCaseMapped), so "Juliet" is "juliet"; "" for ANONYMOUS.
    std::string username;
    std::string authzid;   ///< the requested authorization identity as sent, "" when none
};

/// Settings of the receiving side of SASL (xmpp::sasl_server_feature).
/// Lookups are awaitable, so that they may ask a database without blocking
/// the session's strand; they are called on the session's strand. An
/// exception from a lookup fails that attempt with temporary-auth-failure.
///
/// A wrong password is answered at once, without a delay: max_attempts
/// bounds the guesses per stream, and a delay per stream would not slow an
/// attacker who opens many streams (throttle per source address where the
/// connections are accepted).
struct server_options {
    /// The verifier of `username` (see server_identity::username for its
    /// form) for `hash` ("SHA-1", "SHA-256", "SHA-512"); nullopt for an
    /// unknown user. Without it no SCRAM mechanism is offered.
    ///
    /// An unknown user, a name that cannot be an account (never looked up)
    /// and an unusable verifier (empty salt, wrong key sizes, iterations 0
    /// or above INT_MAX) all get a server-first-message like a real
    /// account's: a 16-byte salt derived from a per-process secret and the
    /// name (the same when asked again) and 4096 iterations; the exchange
    /// then fails at the client's proof with not-authorized and the text
    /// "invalid-proof", exactly like a wrong password (RFC 5802 7, on
    /// server-error-value: the server may withhold the real reason to
    /// prevent information disclosure). Only the time the lookup itself
    /// takes can tell them apart. Real verifiers from make_scram_secret()
    /// have 16-byte salts; choose 4096 iterations for them too, or the
    /// count tells which accounts exist.
    std::function<boost::asio::awaitable<std::optional<scram_secret>>(std::string username, std::string hash)>
        scram_lookup;
    /// Hashes offered for SCRAM, strongest first ("SHA-512", "SHA-256",
    /// "SHA-1"; other names are ignored). All -PLUS variants come first in
    /// the advertisement, then the plain ones, each group in this order.
    std::vector<std::string> scram_hashes = {"SHA-512", "SHA-256", "SHA-1"};
    /// Checks a PLAIN login (RFC 4616): `username` as in server_identity,
    /// `password` SASLprep'd (a query string), `authzid` as sent; returns
    /// true when the password is right.
    std::function<boost::asio::awaitable<bool>(std::string username, std::string password, std::string authzid)>
        plain_check;
    /// Or check PLAIN passwords with Cyrus SASL against this sasldb file
    /// (sasl_checkpass with pwcheck_method auxprop, auxprop_plugin sasldb;
    /// accounts made with `saslpasswd2 -f FILE -u DOMAIN -c USER`, the realm
    /// being the server's domain). Used when plain_check is empty. The
    /// check is blocking (the sasldb plugin reads the Berkeley DB file: a
    /// few microseconds for a local file) and runs on the session's strand.
    /// In the BoringSSL build Cyrus loads only plugins that do not link
    /// OpenSSL's libcrypto (libsasldb does not). An unreadable file fails
    /// logins with temporary-auth-failure. PLAIN is offered only on a
    /// TLS-protected stream (RFC 4616 6: never a password in the clear);
    /// asked for on another, it fails with encryption-required.
    std::string sasldb_path;
    /// Offer ANONYMOUS (RFC 4505; any trace of at most 255 characters). The
    /// stream's peer is then "anon-<32 random hex digits>@<domain>".
    bool allow_anonymous = false;
    /// Whether `who` may act as who.authzid, asked only when the authzid is
    /// not empty and is a bare JID with a localpart (RFC 6120 6.3.8; any
    /// other authzid is invalid-authzid). Default: only the user's own bare
    /// JID. When allowed, the stream's peer is the authzid's JID. Return
    /// false for invalid-authzid.
    std::function<bool(const server_identity& who, std::string_view domain)> authorize;
    /// Attempts (each <auth/>, a client <abort/> included) before the
    /// feature gives up: after the last <failure/> it throws
    /// boost::system::system_error with that failure's condition, and the
    /// negotiator ends the stream (RFC 6120 6.4.5 allows a reasonable
    /// number of retries and suggests the stream error policy-violation).
    /// 0 counts as 1.
    unsigned max_attempts = 3;
    /// Largest decoded SASL message accepted from the client (each <auth/>
    /// and <response/>); longer ones fail with malformed-request, without
    /// decoding base64 that cannot fit.
    std::size_t max_message_bytes = 4096;
};

} // namespace xmpp::sasl

template <>
struct boost::system::is_error_code_enum<xmpp::sasl::errc> : std::true_type {};
