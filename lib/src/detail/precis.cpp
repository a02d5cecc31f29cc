// PRECIS (RFC 8264) profiles UsernameCaseMapped and OpaqueString (RFC 8265)
// and IDNA2008 (RFC 5890-5893) checks, on ICU.  The structure follows the
// derived-property algorithm of RFC 8264 section 8 (as golang.org/x/text/
// secure/precis and precis_i18n do), computed from ICU's character
// properties at run time, so it tracks ICU's Unicode version.
#include "precis.hpp"

#include <climits>
#include <optional>
#include <string>
#include <string_view>

#include <unicode/uchar.h>
#include <unicode/uidna.h>
#include <unicode/unorm2.h>
#include <unicode/uscript.h>
#include <unicode/ustring.h>
#include <unicode/utypes.h>

namespace xmpp::detail {
namespace {

thread_local std::uint64_t icu_calls = 0;

void note_icu() noexcept { ++icu_calls; }

// ---------------------------------------------------------------------------
// UTF-8 / UTF-16 / UTF-32 conversions.  Our own, so that validation on the
// ASCII fast path needs no ICU.

// Decodes the code point at s[i] and advances i; false when ill-formed
// (RFC 3629 section 4: no overlongs, no surrogates, nothing above U+10FFFF).
bool next_code_point(std::string_view s, std::size_t& i, char32_t& cp) noexcept {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
        cp = b0;
        ++i;
        return true;
    }
    std::size_t n = 0;
    char32_t min = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        n = 1; cp = b0 & 0x1Fu; min = 0x80;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        n = 2; cp = b0 & 0x0Fu; min = 0x800;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        n = 3; cp = b0 & 0x07u; min = 0x10000;
    } else {
        return false; // continuation byte, C0/C1 overlong lead, or F5..FF
    }
    if (s.size() - i <= n) return false;
    for (std::size_t k = 1; k <= n; ++k) {
        const auto b = static_cast<unsigned char>(s[i + k]);
        if ((b & 0xC0u) != 0x80u) return false;
        cp = (cp << 6) | (b & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
    return true;
}

bool decode_utf8(std::string_view s, std::u32string& out) {
    out.clear();
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        char32_t cp = 0;
        if (!next_code_point(s, i, cp)) return false;
        out.push_back(cp);
    }
    return true;
}

void append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

std::string encode_utf8(std::u32string_view s) {
    std::string out;
    out.reserve(s.size() * 2);
    for (char32_t cp : s) append_utf8(out, cp);
    return out;
}

std::u16string to_utf16(std::u32string_view s) {
    std::u16string out;
    out.reserve(s.size());
    for (char32_t cp : s) {
        if (cp < 0x10000) {
            out.push_back(static_cast<char16_t>(cp));
        } else {
            cp -= 0x10000;
            out.push_back(static_cast<char16_t>(0xD800 + (cp >> 10)));
            out.push_back(static_cast<char16_t>(0xDC00 + (cp & 0x3FF)));
        }
    }
    return out;
}

// ICU only returns well-formed UTF-16 for well-formed input; a lone
// surrogate would become U+FFFD, which the class checks then reject.
std::u32string from_utf16(std::u16string_view s) {
    std::u32string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        char32_t c = s[i];
        if (c >= 0xD800 && c <= 0xDBFF && i + 1 < s.size() && s[i + 1] >= 0xDC00 &&
            s[i + 1] <= 0xDFFF) {
            c = 0x10000 + ((c - 0xD800) << 10) + (s[i + 1] - 0xDC00);
            ++i;
        } else if (c >= 0xD800 && c <= 0xDFFF) {
            c = 0xFFFD;
        }
        out.push_back(c);
    }
    return out;
}

// Runs an ICU "preflighting" string function, growing the buffer once when
// ICU reports that it was too small.
template <class F>
bool icu_string_op(std::u16string_view in, std::u16string& out, F&& op) {
    out.clear();
    if (in.empty()) return true;
    if (in.size() > static_cast<std::size_t>(INT32_MAX / 4)) return false;
    out.resize(in.size() + 16);
    for (int attempt = 0; attempt < 2; ++attempt) {
        UErrorCode err = U_ZERO_ERROR;
        const int32_t n = op(out.data(), static_cast<int32_t>(out.size()), in.data(),
                             static_cast<int32_t>(in.size()), &err);
        if (err == U_BUFFER_OVERFLOW_ERROR && n > 0) {
            out.resize(static_cast<std::size_t>(n));
            continue;
        }
        if (U_FAILURE(err) || n < 0) return false;
        out.resize(static_cast<std::size_t>(n));
        return true;
    }
    return false;
}

const UNormalizer2* nfc() noexcept {
    UErrorCode err = U_ZERO_ERROR;
    const UNormalizer2* n = unorm2_getNFCInstance(&err); // cached by ICU
    return U_SUCCESS(err) ? n : nullptr;
}

const UNormalizer2* nfkc() noexcept {
    UErrorCode err = U_ZERO_ERROR;
    const UNormalizer2* n = unorm2_getNFKCInstance(&err);
    return U_SUCCESS(err) ? n : nullptr;
}

bool normalize(const UNormalizer2* norm, std::u16string_view in, std::u16string& out) {
    if (norm == nullptr) return false;
    return icu_string_op(in, out, [norm](UChar* d, int32_t cap, const UChar* s, int32_t len,
                                         UErrorCode* e) {
        return unorm2_normalize(norm, s, len, d, cap, e);
    });
}

std::u16string single(char32_t cp) { return to_utf16(std::u32string_view(&cp, 1)); }

// ---------------------------------------------------------------------------
// Derived properties (RFC 8264 section 8; RFC 5892 section 3).

enum class prop { pvalid, free_pval, contextj, contexto, disallowed, unassigned };

// RFC 5892 2.6 "Exceptions" (F), which RFC 8264 9.6 reuses unchanged.
std::optional<prop> exception_value(char32_t c) noexcept {
    switch (c) {
    case 0x00DF: case 0x03C2: case 0x06FD: case 0x06FE: case 0x0F0B: case 0x3007:
        return prop::pvalid;
    case 0x00B7: case 0x0375: case 0x05F3: case 0x05F4: case 0x30FB:
        return prop::contexto;
    case 0x0640: case 0x07FA: case 0x302E: case 0x302F: case 0x3031: case 0x3032:
    case 0x3033: case 0x3034: case 0x3035: case 0x303B:
        return prop::disallowed;
    default:
        break;
    }
    if ((c >= 0x0660 && c <= 0x0669) || (c >= 0x06F0 && c <= 0x06F9)) return prop::contexto;
    return std::nullopt;
}

bool is_noncharacter(char32_t c) noexcept {
    return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_NONCHARACTER_CODE_POINT) != 0;
}

// RFC 5892 2.4 / RFC 8264 9.9: Cn and not a noncharacter.
bool is_unassigned(char32_t c) noexcept {
    return u_charType(static_cast<UChar32>(c)) == U_UNASSIGNED && !is_noncharacter(c);
}

// RFC 5892 2.9 / RFC 8264 9.12: Hangul_Syllable_Type L, V or T.
bool is_old_hangul_jamo(char32_t c) noexcept {
    const auto t = u_getIntPropertyValue(static_cast<UChar32>(c), UCHAR_HANGUL_SYLLABLE_TYPE);
    return t == U_HST_LEADING_JAMO || t == U_HST_VOWEL_JAMO || t == U_HST_TRAILING_JAMO;
}

bool is_join_control(char32_t c) noexcept {
    return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_JOIN_CONTROL) != 0;
}

bool is_default_ignorable(char32_t c) noexcept {
    return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_DEFAULT_IGNORABLE_CODE_POINT) != 0;
}

// RFC 5892 2.1 / RFC 8264 9.1 LetterDigits: Ll, Lu, Lo, Nd, Lm, Mn, Mc.
bool is_letter_digit(int8_t cat) noexcept {
    switch (cat) {
    case U_LOWERCASE_LETTER: case U_UPPERCASE_LETTER: case U_OTHER_LETTER:
    case U_DECIMAL_DIGIT_NUMBER: case U_MODIFIER_LETTER: case U_NON_SPACING_MARK:
    case U_COMBINING_SPACING_MARK:
        return true;
    default:
        return false;
    }
}

// RFC 8264 9.17 HasCompat: toNFKC(cp) != cp.
bool has_compat(char32_t c) noexcept {
    const UNormalizer2* n = nfkc();
    if (n == nullptr) return true;
    const std::u16string s = single(c);
    UErrorCode err = U_ZERO_ERROR;
    const UBool ok = unorm2_isNormalized(n, s.data(), static_cast<int32_t>(s.size()), &err);
    return U_FAILURE(err) || !ok;
}

// RFC 8264 section 8, the PRECIS derived property.  "ID_DIS or FREE_PVAL"
// is returned as free_pval; IdentifierClass treats it as disallowed.
prop precis_property(char32_t c) noexcept {
    if (auto e = exception_value(c)) return *e;
    // BackwardCompatible (RFC 8264 9.7) is empty.
    if (is_unassigned(c)) return prop::unassigned;
    if (c >= 0x21 && c <= 0x7E) return prop::pvalid; // ASCII7 (9.11)
    if (is_join_control(c)) return prop::contextj;
    if (is_old_hangul_jamo(c)) return prop::disallowed;
    if (is_default_ignorable(c) || is_noncharacter(c)) return prop::disallowed; // 9.13
    const int8_t cat = u_charType(static_cast<UChar32>(c));
    if (cat == U_CONTROL_CHAR) return prop::disallowed; // 9.14
    if (has_compat(c)) return prop::free_pval;
    if (is_letter_digit(cat)) return prop::pvalid;
    switch (cat) {
    case U_TITLECASE_LETTER: case U_LETTER_NUMBER: case U_OTHER_NUMBER:
    case U_ENCLOSING_MARK:                                    // OtherLetterDigits (9.18)
    case U_SPACE_SEPARATOR:                                   // Spaces (9.14)
    case U_MATH_SYMBOL: case U_CURRENCY_SYMBOL: case U_MODIFIER_SYMBOL:
    case U_OTHER_SYMBOL:                                      // Symbols (9.15)
    case U_CONNECTOR_PUNCTUATION: case U_DASH_PUNCTUATION: case U_START_PUNCTUATION:
    case U_END_PUNCTUATION: case U_INITIAL_PUNCTUATION: case U_FINAL_PUNCTUATION:
    case U_OTHER_PUNCTUATION:                                 // Punctuation (9.16)
        return prop::free_pval;
    default:
        return prop::disallowed;
    }
}

// RFC 5892 2.2 Unstable: toNFKC(toCaseFold(toNFKC(cp))) != cp.
bool is_unstable(char32_t c) {
    const std::u16string s = single(c);
    std::u16string a, b, d;
    if (!normalize(nfkc(), s, a)) return true;
    if (!icu_string_op(a, b, [](UChar* dst, int32_t cap, const UChar* src, int32_t len,
                                UErrorCode* e) {
            return u_strFoldCase(dst, cap, src, len, U_FOLD_CASE_DEFAULT, e);
        }))
        return true;
    if (!normalize(nfkc(), b, d)) return true;
    return d != s;
}

// RFC 5892 section 3, the IDNA2008 derived property (no FREE_PVAL there).
prop idna_property(char32_t c) {
    if (auto e = exception_value(c)) return *e;
    if (is_unassigned(c)) return prop::unassigned;
    if (c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')) return prop::pvalid;
    if (is_join_control(c)) return prop::contextj;
    if (is_unstable(c)) return prop::disallowed;
    if (is_default_ignorable(c) || is_noncharacter(c) ||
        u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_WHITE_SPACE))
        return prop::disallowed; // IgnorableProperties (2.3)
    const auto block = ublock_getCode(static_cast<UChar32>(c));
    if (block == UBLOCK_COMBINING_MARKS_FOR_SYMBOLS || block == UBLOCK_MUSICAL_SYMBOLS ||
        block == UBLOCK_ANCIENT_GREEK_MUSICAL_NOTATION)
        return prop::disallowed; // IgnorableBlocks (2.4)
    if (is_old_hangul_jamo(c)) return prop::disallowed;
    if (is_letter_digit(u_charType(static_cast<UChar32>(c)))) return prop::pvalid;
    return prop::disallowed;
}

// ---------------------------------------------------------------------------
// Contextual rules, RFC 5892 appendix A (RFC 8264 9.8/9.9 use them as is).

UScriptCode script_of(char32_t c) noexcept {
    UErrorCode err = U_ZERO_ERROR;
    const UScriptCode s = uscript_getScript(static_cast<UChar32>(c), &err);
    return U_SUCCESS(err) ? s : USCRIPT_INVALID_CODE;
}

bool is_virama(char32_t c) noexcept { return u_getCombiningClass(static_cast<UChar32>(c)) == 9; }

int joining_type(char32_t c) noexcept {
    return u_getIntPropertyValue(static_cast<UChar32>(c), UCHAR_JOINING_TYPE);
}

bool is_arabic_indic(char32_t c) noexcept { return c >= 0x0660 && c <= 0x0669; }
bool is_extended_arabic_indic(char32_t c) noexcept { return c >= 0x06F0 && c <= 0x06F9; }

// True when the CONTEXTJ/CONTEXTO code point s[i] is allowed where it is;
// a code point without a rule is rejected (RFC 8264 section 8, CONTEXTO).
bool context_allows(std::u32string_view s, std::size_t i) {
    const char32_t c = s[i];
    const bool has_before = i > 0;
    const bool has_after = i + 1 < s.size();
    switch (c) {
    case 0x200C: { // A.1 ZERO WIDTH NON-JOINER
        if (has_before && is_virama(s[i - 1])) return true;
        // (Joining_Type:{L,D})(Joining_Type:T)*\u200C(Joining_Type:T)*(Joining_Type:{R,D})
        std::size_t j = i;
        bool left = false;
        while (j > 0) {
            const int t = joining_type(s[--j]);
            if (t == U_JT_TRANSPARENT) continue;
            left = t == U_JT_LEFT_JOINING || t == U_JT_DUAL_JOINING;
            break;
        }
        if (!left) return false;
        for (j = i + 1; j < s.size(); ++j) {
            const int t = joining_type(s[j]);
            if (t == U_JT_TRANSPARENT) continue;
            return t == U_JT_RIGHT_JOINING || t == U_JT_DUAL_JOINING;
        }
        return false;
    }
    case 0x200D: // A.2 ZERO WIDTH JOINER
        return has_before && is_virama(s[i - 1]);
    case 0x00B7: // A.3 MIDDLE DOT, only in "l·l" (Catalan)
        return has_before && has_after && s[i - 1] == 0x6C && s[i + 1] == 0x6C;
    case 0x0375: // A.4 GREEK LOWER NUMERAL SIGN: followed by Greek
        return has_after && script_of(s[i + 1]) == USCRIPT_GREEK;
    case 0x05F3: // A.5, A.6 HEBREW GERESH / GERSHAYIM: preceded by Hebrew
    case 0x05F4:
        return has_before && script_of(s[i - 1]) == USCRIPT_HEBREW;
    case 0x30FB: // A.7 KATAKANA MIDDLE DOT: some Hiragana, Katakana or Han
        for (char32_t x : s) {
            const auto sc = script_of(x);
            if (sc == USCRIPT_HIRAGANA || sc == USCRIPT_KATAKANA || sc == USCRIPT_HAN) return true;
        }
        return false;
    default:
        break;
    }
    if (is_arabic_indic(c)) { // A.8: not mixed with Extended Arabic-Indic digits
        for (char32_t x : s)
            if (is_extended_arabic_indic(x)) return false;
        return true;
    }
    if (is_extended_arabic_indic(c)) { // A.9: not mixed with Arabic-Indic digits
        for (char32_t x : s)
            if (is_arabic_indic(x)) return false;
        return true;
    }
    return false;
}

enum class string_class { identifier, freeform };

// RFC 8264 sections 4.2 / 4.3: every code point PVALID (or FREE_PVAL in
// FreeformClass), CONTEXTJ/CONTEXTO ones only where their rule allows.
bool in_class(std::u32string_view s, string_class cls) {
    for (std::size_t i = 0; i < s.size(); ++i) {
        switch (precis_property(s[i])) {
        case prop::pvalid:
            break;
        case prop::free_pval:
            if (cls == string_class::identifier) return false;
            break;
        case prop::contextj:
        case prop::contexto:
            if (!context_allows(s, i)) return false;
            break;
        default:
            return false;
        }
    }
    return true;
}

// ---------------------------------------------------------------------------
// The bidi rule, RFC 5893 section 2 (RFC 8265 3.3.2 step 5).

bool has_rtl(std::u32string_view s) noexcept {
    for (char32_t c : s) {
        const auto d = u_charDirection(static_cast<UChar32>(c));
        if (d == U_RIGHT_TO_LEFT || d == U_RIGHT_TO_LEFT_ARABIC || d == U_ARABIC_NUMBER)
            return true;
    }
    return false;
}

bool bidi_rule(std::u32string_view s) noexcept {
    if (s.empty()) return false;
    const auto first = u_charDirection(static_cast<UChar32>(s.front()));
    const bool rtl = first == U_RIGHT_TO_LEFT || first == U_RIGHT_TO_LEFT_ARABIC;
    if (!rtl && first != U_LEFT_TO_RIGHT) return false; // condition 1
    std::size_t end = s.size();
    while (end > 0 && u_charDirection(static_cast<UChar32>(s[end - 1])) == U_DIR_NON_SPACING_MARK)
        --end;
    if (end == 0) return false;
    const auto last = u_charDirection(static_cast<UChar32>(s[end - 1]));
    bool en = false;
    bool an = false;
    for (char32_t c : s) {
        const auto d = u_charDirection(static_cast<UChar32>(c));
        switch (d) {
        case U_EUROPEAN_NUMBER: en = true; break;
        case U_ARABIC_NUMBER: an = true; break;
        default: break;
        }
        switch (d) {
        case U_EUROPEAN_NUMBER: case U_EUROPEAN_NUMBER_SEPARATOR: case U_COMMON_NUMBER_SEPARATOR:
        case U_EUROPEAN_NUMBER_TERMINATOR: case U_OTHER_NEUTRAL: case U_BOUNDARY_NEUTRAL:
        case U_DIR_NON_SPACING_MARK:
            break; // allowed in both directions (conditions 2 and 5)
        case U_RIGHT_TO_LEFT: case U_RIGHT_TO_LEFT_ARABIC: case U_ARABIC_NUMBER:
            if (!rtl) return false;
            break;
        case U_LEFT_TO_RIGHT:
            if (rtl) return false;
            break;
        default:
            return false;
        }
    }
    if (rtl) {
        if (en && an) return false; // condition 4
        return last == U_RIGHT_TO_LEFT || last == U_RIGHT_TO_LEFT_ARABIC ||
               last == U_EUROPEAN_NUMBER || last == U_ARABIC_NUMBER; // condition 3
    }
    return last == U_LEFT_TO_RIGHT || last == U_EUROPEAN_NUMBER; // condition 6
}

// ---------------------------------------------------------------------------
// Profile mappings.

// RFC 8265 3.3.2 step 1: fullwidth and halfwidth code points to their
// decomposition mappings.
bool width_map(std::u32string& s) {
    const UNormalizer2* n = nfkc();
    if (n == nullptr) return false;
    std::u32string out;
    out.reserve(s.size());
    for (char32_t c : s) {
        const auto dt = u_getIntPropertyValue(static_cast<UChar32>(c), UCHAR_DECOMPOSITION_TYPE);
        if (dt != U_DT_WIDE && dt != U_DT_NARROW) {
            out.push_back(c);
            continue;
        }
        UChar buf[8];
        UErrorCode err = U_ZERO_ERROR;
        const int32_t len = unorm2_getRawDecomposition(n, static_cast<UChar32>(c), buf, 8, &err);
        if (U_FAILURE(err) || len <= 0) return false;
        out += from_utf16(std::u16string_view(buf, static_cast<std::size_t>(len)));
    }
    s = std::move(out);
    return true;
}

// One application of the UsernameCaseMapped mapping rules (RFC 8265 3.3.2
// steps 1-4): width mapping, toLowerCase (root locale), NFC.
bool username_pass(std::u32string& s) {
    if (!width_map(s)) return false;
    std::u16string u = to_utf16(s);
    std::u16string lower;
    if (!icu_string_op(u, lower, [](UChar* d, int32_t cap, const UChar* src, int32_t len,
                                    UErrorCode* e) {
            return u_strToLower(d, cap, src, len, "", e); // "" is the root locale
        }))
        return false;
    if (!normalize(nfc(), lower, u)) return false;
    s = from_utf16(u);
    return true;
}

// One application of the OpaqueString mapping rules (RFC 8265 4.2.2 steps
// 2 and 4): non-ASCII spaces (Zs) to U+0020, NFC.
bool opaque_pass(std::u32string& s) {
    for (char32_t& c : s)
        if (c >= 0x80 && u_charType(static_cast<UChar32>(c)) == U_SPACE_SEPARATOR) c = 0x20;
    std::u16string u = to_utf16(s);
    std::u16string n;
    if (!normalize(nfc(), u, n)) return false;
    s = from_utf16(n);
    return true;
}

// Applies a mapping until it is stable, so that enforcement is idempotent
// (RFC 8264 section 7 asks for it; case mapping and NFC do not commute for
// every input).  Gives up after a few rounds, like golang.org/x/text/precis.
template <class Pass>
bool map_to_fixed_point(std::u32string& s, Pass pass) {
    if (!pass(s)) return false;
    for (int round = 0; round < 4; ++round) {
        std::u32string next = s;
        if (!pass(next)) return false;
        if (next == s) return true;
        s = std::move(next);
    }
    return false;
}

const UIDNA* uts46() noexcept {
    static const UIDNA* const idna = [] {
        UErrorCode err = U_ZERO_ERROR;
        // RFC 7622 3.2.2: IDNA2008 processing; UTS #46 nontransitional keeps
        // ß, ς, ZWJ and ZWNJ as IDNA2008 does; STD3 rules keep to LDH in ASCII.
        UIDNA* p = uidna_openUTS46(UIDNA_NONTRANSITIONAL_TO_UNICODE |
                                       UIDNA_NONTRANSITIONAL_TO_ASCII | UIDNA_CHECK_BIDI |
                                       UIDNA_CHECK_CONTEXTJ | UIDNA_CHECK_CONTEXTO |
                                       UIDNA_USE_STD3_RULES,
                                   &err);
        return U_SUCCESS(err) ? p : nullptr;
    }();
    return idna;
}

// Length of the A-label of a U-label, or -1.
int32_t alabel_length(std::string_view label) {
    const UIDNA* idna = uts46();
    if (idna == nullptr) return -1;
    char buf[256];
    UIDNAInfo info = UIDNA_INFO_INITIALIZER;
    UErrorCode err = U_ZERO_ERROR;
    const int32_t n = uidna_labelToASCII_UTF8(idna, label.data(), static_cast<int32_t>(label.size()),
                                              buf, sizeof buf, &info, &err);
    if (err == U_BUFFER_OVERFLOW_ERROR) return n; // longer than any valid label anyway
    if (U_FAILURE(err)) return -1;
    return n;
}

// RFC 5891 4.2.3 and 4.2.2 on one non-ASCII label of UTS #46 output.
bool valid_ulabel(std::string_view label) {
    if (label.empty() || label.size() > 1023) return false;
    // 4.2.3.1: no leading or trailing hyphen, no "--" in positions 3 and 4.
    if (label.front() == '-' || label.back() == '-') return false;
    if (label.size() >= 4 && label[2] == '-' && label[3] == '-') return false;
    std::u32string cps;
    if (!decode_utf8(label, cps) || cps.empty()) return false;
    // 4.2.3.2: no leading combining mark.
    const int8_t cat0 = u_charType(static_cast<UChar32>(cps.front()));
    if (cat0 == U_NON_SPACING_MARK || cat0 == U_COMBINING_SPACING_MARK || cat0 == U_ENCLOSING_MARK)
        return false;
    // 4.2.2: every code point PVALID, or CONTEXTJ/CONTEXTO with its rule met.
    for (std::size_t i = 0; i < cps.size(); ++i) {
        switch (idna_property(cps[i])) {
        case prop::pvalid:
            break;
        case prop::contextj:
        case prop::contexto:
            if (!context_allows(cps, i)) return false;
            break;
        default:
            return false;
        }
    }
    const int32_t alen = alabel_length(label);
    return alen > 0 && alen <= 63; // RFC 5890 2.3.2.1
}

} // namespace

std::uint64_t precis_icu_calls() noexcept { return icu_calls; }

bool is_ascii(std::string_view s) noexcept {
    for (char c : s)
        if (static_cast<unsigned char>(c) >= 0x80) return false;
    return true;
}

bool is_valid_utf8(std::string_view s) noexcept {
    for (std::size_t i = 0; i < s.size();) {
        if (static_cast<unsigned char>(s[i]) < 0x80) {
            ++i;
            continue;
        }
        char32_t cp = 0;
        if (!next_code_point(s, i, cp)) return false;
    }
    return true;
}

precis_status username_case_mapped(std::string_view in, std::string& out, bool force_icu) {
    out.clear();
    if (in.empty()) return precis_status::empty;
    if (!force_icu && is_ascii(in)) {
        // ASCII fast path: ASCII7 (U+0021..U+007E) is PVALID in IdentifierClass
        // (RFC 8264 9.11); width mapping, NFC and the bidi rule change nothing;
        // toLowerCase is A-Z -> a-z.
        for (char c : in)
            if (c < 0x21 || c > 0x7E) return precis_status::disallowed;
        out.resize(in.size());
        for (std::size_t i = 0; i < in.size(); ++i)
            out[i] = in[i] >= 'A' && in[i] <= 'Z' ? static_cast<char>(in[i] - 'A' + 'a') : in[i];
        return precis_status::ok;
    }
    note_icu();
    std::u32string s;
    if (!decode_utf8(in, s)) return precis_status::invalid_utf8;
    if (!map_to_fixed_point(s, username_pass)) return precis_status::disallowed;
    if (s.empty()) return precis_status::empty;
    if (!in_class(s, string_class::identifier)) return precis_status::disallowed;
    if (has_rtl(s) && !bidi_rule(s)) return precis_status::disallowed;
    out = encode_utf8(s);
    return precis_status::ok;
}

precis_status opaque_string(std::string_view in, std::string& out, bool force_icu) {
    out.clear();
    if (in.empty()) return precis_status::empty;
    if (!force_icu && is_ascii(in)) {
        // ASCII fast path: U+0020 is a space (FREE_PVAL), U+0021..U+007E are
        // PVALID, controls are DISALLOWED (RFC 8264 section 8).
        for (char c : in)
            if (c < 0x20 || c > 0x7E) return precis_status::disallowed;
        out.assign(in);
        return precis_status::ok;
    }
    note_icu();
    std::u32string s;
    if (!decode_utf8(in, s)) return precis_status::invalid_utf8;
    if (!map_to_fixed_point(s, opaque_pass)) return precis_status::disallowed;
    if (s.empty()) return precis_status::empty;
    if (!in_class(s, string_class::freeform)) return precis_status::disallowed;
    out = encode_utf8(s);
    return precis_status::ok;
}

precis_status idna_to_unicode(std::string_view in, std::string& out) {
    out.clear();
    note_icu();
    if (!is_valid_utf8(in)) return precis_status::invalid_utf8;
    if (in.empty()) return precis_status::empty;
    if (in.size() > static_cast<std::size_t>(INT32_MAX / 8)) return precis_status::disallowed;
    const UIDNA* idna = uts46();
    if (idna == nullptr) return precis_status::disallowed;
    // UTS #46 mapping can expand (U+FDFA becomes 18 code points): grow once.
    out.resize(in.size() * 2 + 16);
    UIDNAInfo info = UIDNA_INFO_INITIALIZER;
    for (int attempt = 0; attempt < 2; ++attempt) {
        info = UIDNA_INFO_INITIALIZER;
        UErrorCode err = U_ZERO_ERROR;
        const int32_t n = uidna_nameToUnicodeUTF8(idna, in.data(), static_cast<int32_t>(in.size()),
                                                  out.data(), static_cast<int32_t>(out.size()),
                                                  &info, &err);
        if (err == U_BUFFER_OVERFLOW_ERROR && n > 0) {
            out.resize(static_cast<std::size_t>(n));
            continue;
        }
        if (U_FAILURE(err) || n < 0) {
            out.clear();
            return precis_status::disallowed;
        }
        out.resize(static_cast<std::size_t>(n));
        break;
    }
    // DNS length limits are not XMPP's: RFC 7622 3.2 allows 1023 octets, and
    // label lengths are checked below on A-labels.
    // Input made only of code points that UTS #46 ignores (U+00AD...) is empty.
    if (out.empty()) return precis_status::empty;
    constexpr uint32_t ignored = UIDNA_ERROR_LABEL_TOO_LONG | UIDNA_ERROR_DOMAIN_NAME_TOO_LONG;
    if ((info.errors & ~ignored) != 0) {
        out.clear();
        return precis_status::disallowed;
    }
    if (!is_valid_utf8(out)) {
        out.clear();
        return precis_status::disallowed;
    }
    // Strict IDNA2008 on top of UTS #46, which accepts symbols (NV8) that
    // IDNA2008 disallows.  ASCII labels are the caller's (LDH rules).
    std::size_t start = 0;
    while (start <= out.size()) {
        std::size_t dot = out.find('.', start);
        if (dot == std::string::npos) dot = out.size();
        const std::string_view label(out.data() + start, dot - start);
        if (!is_ascii(label) && !valid_ulabel(label)) {
            out.clear();
            return precis_status::disallowed;
        }
        start = dot + 1;
    }
    return precis_status::ok;
}

precis_status idna_to_ascii(std::string_view in, std::string& out) {
    out.clear();
    if (in.empty()) return precis_status::empty;
    if (is_ascii(in)) {
        out.assign(in);
        return precis_status::ok;
    }
    note_icu();
    if (!is_valid_utf8(in)) return precis_status::invalid_utf8;
    const UIDNA* idna = uts46();
    if (idna == nullptr || in.size() > 4096) return precis_status::disallowed;
    char buf[512]; // 253 octets at most when valid; overflow = too long
    UIDNAInfo info = UIDNA_INFO_INITIALIZER;
    UErrorCode err = U_ZERO_ERROR;
    const int32_t n = uidna_nameToASCII_UTF8(idna, in.data(), static_cast<int32_t>(in.size()), buf,
                                             sizeof buf, &info, &err);
    if (U_FAILURE(err) || n <= 0 || info.errors != 0) return precis_status::disallowed;
    out.assign(buf, static_cast<std::size_t>(n));
    return precis_status::ok;
}

} // namespace xmpp::detail
