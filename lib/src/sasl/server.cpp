// Server side of SCRAM-SHA-1/-256/-512(-PLUS) (RFC 5802, RFC 7677), PLAIN
// (RFC 4616) and ANONYMOUS (RFC 4505), sans-io; the SCRAM verifier
// derivation (make_scram_secret). Crypto and SCRAM grammar helpers come from
// scram.cpp (detail.hpp), so the client and the server compute with the
// same code.
#include "server.hpp"

#include "detail.hpp"
#include "detail/precis.hpp" // is_valid_utf8

#include <xmpp/jid.hpp>

#include <algorithm>
#include <climits>
#include <mutex>

namespace xmpp::sasl {

namespace detail {

namespace {

constexpr std::string_view out_of_turn = "out of turn";

// The per-process key of fake salts. A restart changes them; a server that
// must hide account existence across restarts keeps unknown names out of
// its logs anyway, and the salts of real accounts stay as they are.
const bytes& fake_salt_key() {
    static const bytes key = [] {
        bytes k = random_bytes(32);
        if (k.empty()) k.assign(32, 0); // RAND_bytes does not fail on Linux (getrandom); stay deterministic
        return k;
    }();
    return key;
}

// Code points of valid UTF-8: the bytes that do not continue a sequence.
std::size_t utf8_length(std::string_view s) {
    return static_cast<std::size_t>(
        std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; }));
}

// --- SCRAM (RFC 5802 5, 7) ---------------------------------------------------------

class scram_server final : public server_mechanism {
public:
    scram_server(std::string name, scram_hash h, bool plus, const scram_server_config& cfg)
        : name_(std::move(name)), hash_(h), plus_(plus), cfg_(cfg) {
        identity_.mechanism = name_;
    }

    ~scram_server() override {
        cleanse(stored_key_.data(), stored_key_.size());
        cleanse(server_key_.data(), server_key_.size());
    }

    std::string_view name() const noexcept override { return name_; }
    const server_identity& identity() const noexcept override { return identity_; }

    server_step start(std::optional<std::string_view> initial) override {
        if (state_ != state::start) return fail(errc::malformed_request, out_of_turn);
        if (!initial) {
            // RFC 4422 5 / RFC 6120 6.4.2: the client speaks first; an empty
            // challenge asks for its first message.
            state_ = state::wait_first;
            return server_step::challenge({});
        }
        return client_first(*initial);
    }

    server_step respond(std::string_view msg) override {
        switch (state_) {
        case state::wait_first: return client_first(msg);
        case state::wait_final: return client_final(msg);
        default: return fail(errc::malformed_request, out_of_turn);
        }
    }

    server_step found(std::optional<scram_secret> secret) override {
        if (state_ != state::lookup) return fail(errc::malformed_request, out_of_turn);
        return server_first(std::move(secret));
    }

private:
    enum class state { start, wait_first, lookup, wait_final, done };

    server_step fail(errc c, std::string_view text) {
        state_ = state::done;
        return server_step::failure(c, std::string(text));
    }

    // client-first-message = gs2-header client-first-message-bare
    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
    server_step client_first(std::string_view msg) {
        if (msg.size() > cfg_.max_message_bytes) return fail(errc::malformed_request, "message too long");
        // The GS2 header: two commas, the authzid between them.
        const std::size_t c1 = msg.find(',');
        if (c1 == std::string_view::npos) return fail(errc::malformed_request, "invalid-encoding");
        const std::size_t c2 = msg.find(',', c1 + 1);
        if (c2 == std::string_view::npos) return fail(errc::malformed_request, "invalid-encoding");
        const std::string_view flag = msg.substr(0, c1);
        const std::string_view authz = msg.substr(c1 + 1, c2 - c1 - 1);
        gs2_header_ = std::string(msg.substr(0, c2 + 1));
        client_first_bare_ = std::string(msg.substr(c2 + 1));

        // RFC 5802 6 and 7: gs2-cbind-flag = ("p=" cb-name) / "n" / "y".
        if (flag.starts_with("p=")) {
            const std::string_view type = flag.substr(2);
            const bool name_ok = !type.empty() && std::all_of(type.begin(), type.end(), [](char c) {
                return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                       c == '-';
            });
            if (!name_ok) return fail(errc::malformed_request, "invalid-encoding");
            // "p" says the client binds: only under a -PLUS name (RFC 5802 4).
            if (!plus_) return fail(errc::malformed_request, "channel binding needs a -PLUS mechanism");
            if (std::find(cfg_.binding_types.begin(), cfg_.binding_types.end(), type) == cfg_.binding_types.end())
                return fail(errc::malformed_request, "unsupported-channel-binding-type");
            cb_data_ = cfg_.binding ? cfg_.binding(type) : bytes{};
            if (cb_data_.empty()) return fail(errc::malformed_request, "unsupported-channel-binding-type");
        } else if (flag == "y") {
            if (plus_) return fail(errc::malformed_request, "a -PLUS mechanism needs channel binding");
            // 6: 'y' means "the server does not seem to support binding".
            // It offered -PLUS: something between us removed it (downgrade).
            if (cfg_.plus_offered) return fail(errc::not_authorized, "server-does-support-channel-binding");
        } else if (flag == "n") {
            if (plus_) return fail(errc::malformed_request, "a -PLUS mechanism needs channel binding");
        } else {
            return fail(errc::malformed_request, "invalid-encoding");
        }
        if (!authz.empty()) {
            // authzid = "a=" saslname
            if (!authz.starts_with("a=")) return fail(errc::malformed_request, "invalid-encoding");
            auto a = unescape_saslname(authz.substr(2));
            if (!a) return fail(errc::malformed_request, "invalid-encoding");
            identity_.authzid = std::move(*a);
        }

        auto attrs = split_attributes(client_first_bare_);
        if (!attrs) return fail(errc::malformed_request, "invalid-encoding");
        const auto& a = *attrs;
        // 5.1 "m": reserved for a mandatory extension; none is defined, so
        // the server MUST fail.
        if (!a.empty() && a[0].name == 'm') return fail(errc::malformed_request, "extensions-not-supported");
        if (a.size() < 2 || a[0].name != 'n' || a[1].name != 'r')
            return fail(errc::malformed_request, "invalid-encoding");
        // Extensions (a[2..]) are attr-vals (split_attributes checked them)
        // that we do not know: ignored (7: extensions).
        if (!is_printable_nonce(a[1].value)) return fail(errc::malformed_request, "invalid-encoding");
        client_nonce_ = std::string(a[1].value);

        // 5.1 "n": '=' only as =2C or =3D, else the server MUST fail; then
        // SASLprep as a query string.
        auto user = unescape_saslname(a[0].value);
        if (!user) return fail(errc::malformed_request, "invalid-username-encoding");
        if (!saslprep(*user, true)) return fail(errc::malformed_request, "invalid-username-encoding");
        lookup_name_ = *user;
        if (auto account = account_name(*user)) {
            identity_.username = std::move(*account);
            state_ = state::lookup;
            return {server_step::action::lookup, std::string(hash_name(hash_)), {}, {}};
        }
        // No account can have this name: never asked for, and treated as
        // an unknown user, to the end.
        state_ = state::lookup;
        return server_first(std::nullopt);
    }

    // server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
    server_step server_first(std::optional<scram_secret> secret) {
        const std::size_t hl = hash_size(hash_);
        const bool usable = secret && !secret->salt.empty() && secret->iterations > 0 &&
                            secret->iterations <= static_cast<std::uint32_t>(INT_MAX) &&
                            secret->stored_key.size() == hl && secret->server_key.size() == hl;
        std::string salt;
        std::uint32_t iterations = 4096;
        if (usable) {
            real_ = true;
            salt = std::move(secret->salt);
            iterations = secret->iterations;
            stored_key_ = std::move(secret->stored_key);
            server_key_ = std::move(secret->server_key);
        } else {
            // Unknown user (or a verifier that cannot be right): the same
            // message a real account would get, a salt that stays the same
            // when asked again, keys that no proof can match.
            salt = fake_salt(hash_, lookup_name_);
            stored_key_ = random_bytes(hl);
            server_key_ = random_bytes(hl);
            if (stored_key_.size() != hl || server_key_.size() != hl)
                return fail(errc::temporary_auth_failure, "no-resources");
        }
        if (secret) {
            cleanse(secret->stored_key.data(), secret->stored_key.size());
            cleanse(secret->server_key.data(), secret->server_key.size());
        }
        std::string snonce = cfg_.server_nonce.empty() ? random_nonce() : cfg_.server_nonce;
        if (snonce.empty() || !is_printable_nonce(snonce)) return fail(errc::temporary_auth_failure, "no-resources");
        nonce_ = client_nonce_ + snonce;
        server_first_ = "r=" + nonce_ + ",s=" + base64_encode(salt) + ",i=" + std::to_string(iterations);
        state_ = state::wait_final;
        return server_step::challenge(server_first_);
    }

    // client-final-message = channel-binding "," nonce ["," extensions] "," proof
    server_step client_final(std::string_view msg) {
        if (msg.size() > cfg_.max_message_bytes) return fail(errc::malformed_request, "message too long");
        auto attrs = split_attributes(msg);
        if (!attrs) return fail(errc::malformed_request, "invalid-encoding");
        const auto& a = *attrs;
        if (a.size() < 3 || a[0].name != 'c' || a[1].name != 'r' || a.back().name != 'p')
            return fail(errc::malformed_request, "invalid-encoding");
        for (std::size_t k = 2; k + 1 < a.size(); ++k)
            if (a[k].name == 'p') return fail(errc::malformed_request, "invalid-encoding"); // proof comes last, once

        // 7: c= is base64(gs2-header [cbind-data]): the header the client
        // sent first (so an authzid or flag changed in transit is caught)
        // and, with "p=", this connection's binding data.
        auto cbind = base64_decode(a[0].value);
        if (!cbind) return fail(errc::malformed_request, "invalid-encoding");
        bytes expected(gs2_header_.begin(), gs2_header_.end());
        expected.insert(expected.end(), cb_data_.begin(), cb_data_.end());
        if (!equal_ct(*cbind, expected)) return fail(errc::not_authorized, "channel-bindings-dont-match");
        // 5.1 "r": the whole nonce of the server-first, nothing else.
        if (a[1].value != nonce_) return fail(errc::not_authorized, "other-error");
        auto proof = base64_decode(a.back().value);
        if (!proof) return fail(errc::malformed_request, "invalid-encoding");

        const std::string_view without_proof = msg.substr(0, msg.size() - a.back().value.size() - 3);
        std::string auth_message;
        auth_message.reserve(client_first_bare_.size() + server_first_.size() + without_proof.size() + 2);
        auth_message.append(client_first_bare_).append(",").append(server_first_).append(",").append(without_proof);

        // 3: ClientSignature = HMAC(StoredKey, AuthMessage);
        //    ClientKey = ClientProof XOR ClientSignature; H(ClientKey) must be StoredKey.
        const std::size_t hl = hash_size(hash_);
        bytes signature = hmac(hash_, stored_key_, auth_message);
        bytes client_key(hl, 0);
        if (proof->size() == hl)
            for (std::size_t k = 0; k < hl; ++k) client_key[k] = (*proof)[k] ^ signature[k];
        bytes computed = hash(hash_, client_key);
        const bool ok = equal_ct(computed, stored_key_) && proof->size() == hl && real_;
        cleanse(client_key.data(), client_key.size());
        if (!ok) return fail(errc::not_authorized, "invalid-proof");

        // ServerSignature = HMAC(ServerKey, AuthMessage), sent as v= with
        // <success/> (RFC 6120 6.3.10, 6.4.6).
        bytes server_signature = hmac(hash_, server_key_, auth_message);
        state_ = state::done;
        return server_step::success("v=" + base64_encode(server_signature));
    }

    std::string name_;
    scram_hash hash_;
    bool plus_;
    scram_server_config cfg_;
    server_identity identity_;
    std::string gs2_header_;
    std::string client_first_bare_;
    std::string client_nonce_;
    std::string lookup_name_; // unescaped username: the fake salt's input
    bytes cb_data_;
    std::string nonce_;
    std::string server_first_;
    bytes stored_key_, server_key_;
    bool real_ = false;
    state state_ = state::start;
};

// PLAIN and ANONYMOUS: one client message, maybe after an empty challenge
// when the client sent no initial response (RFC 6120 6.4.2).
class one_message_server : public server_mechanism {
public:
    explicit one_message_server(std::string_view mech) { identity_.mechanism = std::string(mech); }

    std::string_view name() const noexcept override { return identity_.mechanism; }
    const server_identity& identity() const noexcept override { return identity_; }

    server_step start(std::optional<std::string_view> initial) override {
        if (state_ != state::start) return fail(errc::malformed_request, out_of_turn);
        if (!initial) {
            state_ = state::wait;
            return server_step::challenge({});
        }
        return message(*initial);
    }

    server_step respond(std::string_view msg) override {
        if (state_ != state::wait) return fail(errc::malformed_request, out_of_turn);
        return message(msg);
    }

protected:
    enum class state { start, wait, check, done };

    virtual server_step message(std::string_view msg) = 0;

    server_step fail(errc c, std::string_view text) {
        state_ = state::done;
        return server_step::failure(c, std::string(text));
    }

    server_identity identity_;
    state state_ = state::start;
};

// --- PLAIN (RFC 4616 2) ---------------------------------------------------------------

class plain_server final : public one_message_server {
public:
    explicit plain_server(std::size_t max_message) : one_message_server("PLAIN"), max_(max_message) {}

    server_step checked(bool ok) override {
        if (state_ != state::check) return fail(errc::malformed_request, out_of_turn);
        state_ = state::done;
        if (!ok) return server_step::failure(errc::not_authorized, {});
        return server_step::success({});
    }

private:
    // message = [authzid] UTF8NUL authcid UTF8NUL passwd
    server_step message(std::string_view msg) override {
        if (msg.size() > max_) return fail(errc::malformed_request, "message too long");
        const std::size_t n1 = msg.find('\0');
        if (n1 == std::string_view::npos) return fail(errc::malformed_request, "no NUL separator");
        const std::size_t n2 = msg.find('\0', n1 + 1);
        if (n2 == std::string_view::npos) return fail(errc::malformed_request, "one NUL separator");
        if (msg.find('\0', n2 + 1) != std::string_view::npos) return fail(errc::malformed_request, "three NULs");
        const std::string_view authzid = msg.substr(0, n1);
        const std::string_view authcid = msg.substr(n1 + 1, n2 - n1 - 1);
        std::string_view passwd = msg.substr(n2 + 1);
        // authcid = 1*SAFE, passwd = 1*SAFE, all UTF-8.
        if (authcid.empty() || passwd.empty()) return fail(errc::malformed_request, "empty authcid or password");
        if (!xmpp::detail::is_valid_utf8(msg)) return fail(errc::malformed_request, "not UTF-8");
        auto account = account_name(authcid);
        auto pass = saslprep(passwd, true);
        // No account has such a name, or no password can be this: the
        // credentials are wrong, and nothing else is said.
        if (!account || !pass) return fail(errc::not_authorized, {});
        identity_.username = std::move(*account);
        identity_.authzid = std::string(authzid);
        state_ = state::check;
        // The feature wipes the password once checked.
        return {server_step::action::check_password, std::move(*pass), {}, {}};
    }

    std::size_t max_;
};

// --- ANONYMOUS (RFC 4505 2, 3) ------------------------------------------------------

class anonymous_server final : public one_message_server {
public:
    anonymous_server() : one_message_server("ANONYMOUS") {}

private:
    // message = [ email / token ]; token = 1*255TCHAR (2). The trace means
    // nothing to us and is not kept; it only has to be what the RFC allows
    // in size and encoding.
    server_step message(std::string_view trace) override {
        if (trace.size() > 255 * 4 || !xmpp::detail::is_valid_utf8(trace) || utf8_length(trace) > 255 ||
            trace.find('\0') != std::string_view::npos)
            return fail(errc::malformed_request, "trace is not 1..255 UTF-8 characters");
        state_ = state::done;
        return server_step::success({});
    }

};

} // namespace

std::unique_ptr<server_mechanism> make_scram_server(std::string_view name, const scram_server_config& cfg) {
    const bool plus = name.ends_with("-PLUS");
    const std::string_view base = plus ? name.substr(0, name.size() - 5) : name;
    const auto h = base.starts_with("SCRAM-") ? scram_hash_of(base) : std::nullopt;
    if (!h) return nullptr;
    if (plus && cfg.binding_types.empty()) return nullptr;
    return std::make_unique<scram_server>(std::string(name), *h, plus, cfg);
}

std::unique_ptr<server_mechanism> make_plain_server(std::size_t max_message_bytes) {
    return std::make_unique<plain_server>(max_message_bytes);
}

std::unique_ptr<server_mechanism> make_anonymous_server() { return std::make_unique<anonymous_server>(); }

std::string fake_salt(scram_hash h, std::string_view username) {
    // HMAC-SHA-256(key, hash name NUL username), first 16 bytes: the size
    // make_scram_secret() gives real salts.
    std::string input(hash_name(h));
    input += '\0';
    input += username;
    bytes mac = hmac(scram_hash::sha256, fake_salt_key(), input);
    return std::string(mac.begin(), mac.begin() + 16);
}

std::string random_localpart() {
    const bytes raw = random_bytes(16);
    if (raw.empty()) return {};
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "anon-";
    for (auto b : raw) {
        out += hex[b >> 4];
        out += hex[b & 15];
    }
    return out;
}

std::optional<std::string> account_name(std::string_view authcid) {
    auto prepped = saslprep(authcid, true);
    if (!prepped || prepped->empty()) return std::nullopt;
    boost::system::error_code ec;
    // The domain only carries the localpart through jid's preparation.
    const jid j = jid::from_parts(*prepped, "localhost", {}, ec);
    if (ec || j.localpart().empty()) return std::nullopt;
    return std::string(j.localpart());
}

} // namespace detail

scram_secret make_scram_secret(std::string_view hash_name, std::string_view password, std::string_view salt,
                               std::uint32_t iterations, error_code& ec) {
    ec = {};
    const auto h = hash_name.starts_with("SHA-") ? detail::scram_hash_of(hash_name) : std::nullopt;
    if (!h) return ec = make_error_code(errc::invalid_mechanism), scram_secret{};
    if (iterations == 0 || iterations > static_cast<std::uint32_t>(INT_MAX))
        return ec = detail::make_error_with_text(errc::invalid_configuration,
                                                 "SCRAM: iterations must be 1..INT_MAX (PBKDF2's limit)"),
               scram_secret{};
    // RFC 5802 2.2: Normalize(password) = SASLprep as a stored string.
    auto pass = detail::saslprep(password, false);
    if (!pass) return ec = make_error_code(errc::invalid_credentials), scram_secret{};
    scram_secret s;
    if (salt.empty()) {
        const detail::bytes r = detail::random_bytes(16);
        if (r.empty()) return ec = make_error_code(errc::temporary_auth_failure), scram_secret{};
        s.salt.assign(r.begin(), r.end());
    } else {
        s.salt = std::string(salt);
    }
    s.iterations = iterations;
    // RFC 5802 3: SaltedPassword = Hi(password, salt, i); ClientKey =
    // HMAC(SaltedPassword, "Client Key"); StoredKey = H(ClientKey);
    // ServerKey = HMAC(SaltedPassword, "Server Key").
    detail::bytes salted;
    const auto salt_bytes =
        std::span(reinterpret_cast<const std::uint8_t*>(s.salt.data()), s.salt.size());
    const bool ok = detail::hi(*h, *pass, salt_bytes, iterations, salted);
    detail::cleanse(pass->data(), pass->size());
    if (!ok) return ec = make_error_code(errc::temporary_auth_failure), scram_secret{};
    detail::bytes client_key = detail::hmac(*h, salted, "Client Key");
    s.stored_key = detail::hash(*h, client_key);
    s.server_key = detail::hmac(*h, salted, "Server Key");
    detail::cleanse(client_key.data(), client_key.size());
    detail::cleanse(salted.data(), salted.size());
    return s;
}

} // namespace xmpp::sasl
