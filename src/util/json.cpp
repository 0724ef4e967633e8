#include "util/json.h"

#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "util/error.h"
#include "util/utf8.h"

namespace sinklab {

namespace {

struct Parser {
    const std::string& text;
    const std::string& what;
    size_t pos = 0;

    [[noreturn]] void error(const std::string& message) const {
        fail("{}: invalid JSON at offset {}: {}", what, pos, message);
    }
    void skip_space() {
        while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\n' || text[pos] == '\r'))
            pos++;
    }
    bool consume(const char* word) {
        const size_t n = std::char_traits<char>::length(word);
        if (text.compare(pos, n, word) != 0) return false;
        pos += n;
        return true;
    }
    uint32_t hex4() {
        if (pos + 4 > text.size()) error("truncated \\u escape");
        uint32_t v = 0;
        for (int i = 0; i < 4; i++) {
            const char c = text[pos++];
            v <<= 4;
            if (c >= '0' && c <= '9') v |= uint32_t(c - '0');
            else if (c >= 'a' && c <= 'f') v |= uint32_t(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= uint32_t(c - 'A' + 10);
            else error("bad hex digit in \\u escape");
        }
        return v;
    }
    std::string string() {
        if (text[pos] != '"') error("expected a string");
        pos++;
        std::string out;
        while (true) {
            if (pos >= text.size()) error("unterminated string");
            const char c = text[pos++];
            if (c == '"') break;
            if (static_cast<unsigned char>(c) < 0x20) error("control character in string");
            if (c != '\\') {
                out += c;
                continue;
            }
            if (pos >= text.size()) error("unterminated escape");
            const char e = text[pos++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    uint32_t cp = hex4();
                    if (cp >= 0xD800 && cp < 0xDC00 && text.compare(pos, 2, "\\u") == 0) {
                        pos += 2;
                        const uint32_t low = hex4();
                        if (low >= 0xDC00 && low < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                        else error("bad surrogate pair");
                    }
                    append_utf8(out, cp);
                    break;
                }
                default: error(fmt::format("bad escape \\{}", e));
            }
        }
        return out;
    }
    Json value(int depth) {
        if (depth > 512) error("nested too deeply");
        skip_space();
        if (pos >= text.size()) error("unexpected end of input");
        const char c = text[pos];
        if (c == '{') {
            pos++;
            Json obj = Json::object();
            skip_space();
            if (pos < text.size() && text[pos] == '}') {
                pos++;
                return obj;
            }
            while (true) {
                skip_space();
                if (pos >= text.size()) error("unterminated object");
                std::string key = string();
                skip_space();
                if (pos >= text.size() || text[pos] != ':') error("expected ':'");
                pos++;
                obj[key] = value(depth + 1);
                skip_space();
                if (pos < text.size() && text[pos] == ',') { pos++; continue; }
                if (pos < text.size() && text[pos] == '}') { pos++; return obj; }
                error("expected ',' or '}'");
            }
        }
        if (c == '[') {
            pos++;
            Json arr = Json::array();
            skip_space();
            if (pos < text.size() && text[pos] == ']') {
                pos++;
                return arr;
            }
            while (true) {
                arr.push_back(value(depth + 1));
                skip_space();
                if (pos < text.size() && text[pos] == ',') { pos++; continue; }
                if (pos < text.size() && text[pos] == ']') { pos++; return arr; }
                error("expected ',' or ']'");
            }
        }
        if (c == '"') return Json(string());
        if (consume("true")) return Json(true);
        if (consume("false")) return Json(false);
        if (consume("null")) return Json();
        if (c == '-' || (c >= '0' && c <= '9')) {
            const char* start = text.c_str() + pos;
            char* end = nullptr;
            const double v = std::strtod(start, &end);
            if (end == start) error("bad number");
            pos += size_t(end - start);
            return Json(v);
        }
        error(fmt::format("unexpected character '{}'", c));
    }
};

void escape_to(std::string& out, const std::string& s) {
    out += '"';
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) out += fmt::format("\\u{:04x}", c);
                else out += ch;
        }
    }
    out += '"';
}

}  // namespace

Json Json::parse(const std::string& text, const std::string& what) {
    Parser p{text, what};
    Json v = p.value(0);
    p.skip_space();
    if (p.pos != text.size()) p.error("trailing characters");
    return v;
}

bool Json::as_bool() const {
    if (!is_bool()) fail("JSON: expected a boolean");
    return std::get<bool>(value_);
}
double Json::as_number() const {
    if (!is_number()) fail("JSON: expected a number");
    return std::get<double>(value_);
}
int64_t Json::as_int() const {
    const double v = as_number();
    if (v != std::floor(v) || std::fabs(v) > 9007199254740992.0) fail("JSON: expected an integer, got {}", v);
    return int64_t(v);
}
const std::string& Json::as_string() const {
    if (!is_string()) fail("JSON: expected a string");
    return std::get<std::string>(value_);
}
const Json::Array& Json::as_array() const {
    if (!is_array()) fail("JSON: expected an array");
    return std::get<Array>(value_);
}
Json::Array& Json::as_array() {
    if (!is_array()) fail("JSON: expected an array");
    return std::get<Array>(value_);
}
const Json::Object& Json::as_object() const {
    if (!is_object()) fail("JSON: expected an object");
    return std::get<Object>(value_);
}

Json& Json::operator[](const std::string& key) {
    if (is_null()) value_ = Object{};
    if (!is_object()) fail("JSON: cannot index a non-object with '{}'", key);
    return std::get<Object>(value_)[key];
}
const Json& Json::at(const std::string& key) const {
    const Object& o = as_object();
    auto it = o.find(key);
    if (it == o.end()) fail("JSON: missing key '{}'", key);
    return it->second;
}
bool Json::contains(const std::string& key) const { return is_object() && as_object().count(key) != 0; }

void Json::push_back(Json v) {
    if (is_null()) value_ = Array{};
    as_array().push_back(std::move(v));
}

size_t Json::size() const {
    if (is_array()) return as_array().size();
    if (is_object()) return as_object().size();
    return 0;
}

std::string Json::dump(int indent) const {
    std::string out;
    dump_to(out, indent, 0);
    return out;
}

void Json::dump_to(std::string& out, int indent, int depth) const {
    auto newline = [&](int d) {
        if (indent > 0) {
            out += '\n';
            out.append(size_t(indent * d), ' ');
        }
    };
    if (is_null()) {
        out += "null";
    } else if (is_bool()) {
        out += as_bool() ? "true" : "false";
    } else if (is_number()) {
        const double v = as_number();
        if (!std::isfinite(v)) out += "null";  // JSON has no NaN or infinity
        else if (v == std::floor(v) && std::fabs(v) < 1e15) out += fmt::format("{}", int64_t(v));
        else out += fmt::format("{}", v);  // shortest representation that round-trips
    } else if (is_string()) {
        escape_to(out, as_string());
    } else if (is_array()) {
        const Array& a = as_array();
        out += '[';
        for (size_t i = 0; i < a.size(); i++) {
            if (i) out += indent > 0 ? "," : ", ";
            if (indent > 0) newline(depth + 1);
            a[i].dump_to(out, indent, depth + 1);
        }
        if (indent > 0 && !a.empty()) newline(depth);
        out += ']';
    } else {
        const Object& o = as_object();
        out += '{';
        bool first = true;
        for (const auto& [k, v] : o) {
            if (!first) out += indent > 0 ? "," : ", ";
            first = false;
            if (indent > 0) newline(depth + 1);
            escape_to(out, k);
            out += ": ";
            v.dump_to(out, indent, depth + 1);
        }
        if (indent > 0 && !o.empty()) newline(depth);
        out += '}';
    }
}

}  // namespace sinklab
