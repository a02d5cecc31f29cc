// Throwaway certificate authority and server certificates for tests, made with
// the openssl command line tool (package "openssl") in a scratch directory.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>
#include <unistd.h>

namespace xmpp::testbed {

/// A scratch directory removed when the object dies.
class temp_dir {
public:
    explicit temp_dir(const std::string& tag = "xmpp-test") {
        std::string tmpl = (std::filesystem::temp_directory_path() / (tag + "-XXXXXX")).string();
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() { std::error_code ec; std::filesystem::remove_all(path_, ec); }
    const std::filesystem::path& path() const noexcept { return path_; }
private:
    std::filesystem::path path_;
};

/// A CA (ca.pem) and leaf certificates it signs, each for one DNS name
/// (CN and subjectAltName), or with the names and signature of a leaf_spec.
/// Keys are P-256 (the CA's optionally RSA 2048, for RSASSA-PSS
/// signatures), certificates SHA-256, valid 2 days.  Each leaf costs two
/// openssl runs (~30 ms); an RSA CA ~0.2 s more.
class pki {
public:
    struct leaf {
        std::filesystem::path cert; ///< leaf certificate (PEM)
        std::filesystem::path key;  ///< its private key (PEM, unencrypted)
    };

    enum class ca_key { ec_p256, rsa_2048 };

    /// What a leaf of issue(const leaf_spec&) presents and how it is signed.
    struct leaf_spec {
        std::string file_stem;        ///< names its files in the directory (unique per pki)
        std::string cn;               ///< subject CN; empty: none (subject O=asio-xmpp-test)
        std::vector<std::string> san; ///< subjectAltName entries, openssl syntax (dns_id(), srv_id(), ...); empty: no extension
        std::string digest = "sha256"; ///< the CA's signature hash (openssl -<digest>)
        bool rsa_pss = false;         ///< RSASSA-PSS signature (RFC 4055), salt = hash length; needs an RSA CA
    };

    /// subjectAltName entries for leaf_spec::san.
    static std::string dns_id(const std::string& name) { return "DNS:" + name; }
    /// SRV-ID (RFC 4985): otherName id-on-dnsSRV, IA5String "_service.domain".
    static std::string srv_id(const std::string& domain, const std::string& service = "_xmpp-client") {
        return "otherName:1.3.6.1.5.5.7.8.7;IA5STRING:" + service + "." + domain;
    }
    /// XmppAddr (RFC 6120 13.7.1.4): otherName id-on-xmppAddr, UTF8String
    /// (`jid` is UTF-8: FORMAT:UTF8, else openssl would re-encode its bytes).
    static std::string xmpp_addr(const std::string& jid) {
        return "otherName:1.3.6.1.5.5.7.8.5;FORMAT:UTF8,UTF8:" + jid;
    }
    static std::string uri_id(const std::string& uri) { return "URI:" + uri; }

    explicit pki(std::filesystem::path dir, ca_key key = ca_key::ec_p256) : dir_(std::move(dir)) {
        std::filesystem::create_directories(dir_);
        const std::string newkey = key == ca_key::rsa_2048 ? "-newkey rsa:2048" : "-newkey ec -pkeyopt ec_paramgen_curve:P-256";
        const std::string cn = key == ca_key::rsa_2048 ? "asio-xmpp-test-rsa-ca" : "asio-xmpp-test-ca";
        run("openssl req -x509 " + newkey + " -nodes -days 2 -subj /CN=" + cn + " -keyout " + q(dir_ / "ca.key") +
            " -out " + q(ca_cert()) +
            " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign");
    }

    std::filesystem::path ca_cert() const { return dir_ / "ca.pem"; }

    /// Issues a certificate for `dns_name`, signed by this CA, or self-signed
    /// when `self_signed` (not trusted by anyone).
    leaf issue(const std::string& dns_name, bool self_signed = false) const {
        leaf l{dir_ / (dns_name + (self_signed ? ".self" : "") + ".crt"),
               dir_ / (dns_name + (self_signed ? ".self" : "") + ".key")};
        auto ext = dir_ / (dns_name + ".ext");
        std::ofstream(ext) << "subjectAltName=DNS:" << dns_name
                           << "\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n";
        if (self_signed) {
            run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=" +
                q(dns_name) + " -keyout " + q(l.key) + " -out " + q(l.cert) + " -addext subjectAltName=DNS:" + q(dns_name));
            return l;
        }
        auto csr = dir_ / (dns_name + ".csr");
        run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=" + q(dns_name) +
            " -keyout " + q(l.key) + " -out " + q(csr));
        run("openssl x509 -req -in " + q(csr) + " -CA " + q(ca_cert()) + " -CAkey " + q(dir_ / "ca.key") +
            " -CAcreateserial -days 2 -sha256 -extfile " + q(ext) + " -out " + q(l.cert));
        return l;
    }

    /// Issues a leaf as `spec` says, signed by this CA (P-256 key,
    /// serverAuth and clientAuth).
    leaf issue(const leaf_spec& spec) const {
        leaf l{dir_ / (spec.file_stem + ".crt"), dir_ / (spec.file_stem + ".key")};
        auto ext = dir_ / (spec.file_stem + ".ext");
        {
            // Entries in a section ("TYPE.n=value"): inline, a ',' inside
            // an otherName's FORMAT:UTF8 modifier would split the list.
            std::ofstream f(ext);
            if (!spec.san.empty()) f << "subjectAltName=@alt\n";
            f << "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n";
            if (!spec.san.empty()) f << "[alt]\n";
            for (std::size_t i = 0; i < spec.san.size(); ++i) {
                const auto colon = spec.san[i].find(':');
                if (colon == std::string::npos) throw std::invalid_argument("pki: bad SAN entry " + spec.san[i]);
                f << spec.san[i].substr(0, colon) << "." << i << "=" << spec.san[i].substr(colon + 1) << "\n";
            }
        }
        auto csr = dir_ / (spec.file_stem + ".csr");
        const std::string subject = spec.cn.empty() ? "/O=asio-xmpp-test" : "/CN=" + spec.cn;
        run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj " + q(subject) +
            " -keyout " + q(l.key) + " -out " + q(csr));
        std::string sign = " -" + spec.digest;
        if (spec.rsa_pss) sign += " -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest";
        run("openssl x509 -req -in " + q(csr) + " -CA " + q(ca_cert()) + " -CAkey " + q(dir_ / "ca.key") +
            " -CAcreateserial -days 2" + sign + " -extfile " + q(ext) + " -out " + q(l.cert));
        return l;
    }

private:
    static std::string q(const std::filesystem::path& p) { return q(p.string()); }
    // Appends rather than "'" + s: GCC 12 warns (-Wrestrict, a false
    // positive) on the inlined operator+.
    static std::string q(const std::string& s) {
        std::string out;
        out.reserve(s.size() + 2);
        out += '\'';
        out += s;
        out += '\'';
        return out;
    }
    static void run(const std::string& cmd) {
        if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0)
            throw std::runtime_error("pki: command failed: " + cmd);
    }
    std::filesystem::path dir_;
};

} // namespace xmpp::testbed
