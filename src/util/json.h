// A small JSON value: enough for metrics.jsonl, safetensors headers, configs and reports.
// Numbers are doubles (integers up to 2^53 are exact), objects keep their keys sorted.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace sinklab {

class Json {
public:
    using Array = std::vector<Json>;
    using Object = std::map<std::string, Json>;

    Json() = default;  // null
    Json(std::nullptr_t) {}
    Json(bool b) : value_(b) {}
    Json(int v) : value_(double(v)) {}
    Json(long v) : value_(double(v)) {}
    Json(long long v) : value_(double(v)) {}
    Json(unsigned v) : value_(double(v)) {}
    Json(unsigned long v) : value_(double(v)) {}
    Json(unsigned long long v) : value_(double(v)) {}
    Json(double v) : value_(v) {}
    Json(const char* s) : value_(std::string(s)) {}
    Json(std::string s) : value_(std::move(s)) {}
    Json(Array a) : value_(std::move(a)) {}
    Json(Object o) : value_(std::move(o)) {}
    template <typename T>
    Json(const std::vector<T>& values) : value_(Array(values.begin(), values.end())) {}

    static Json object() { return Json(Object{}); }
    static Json array() { return Json(Array{}); }
    // Parses text; throws Error("<what>: invalid JSON at offset N: ...") naming `what`.
    static Json parse(const std::string& text, const std::string& what = "JSON");

    bool is_null() const { return std::holds_alternative<std::nullptr_t>(value_); }
    bool is_bool() const { return std::holds_alternative<bool>(value_); }
    bool is_number() const { return std::holds_alternative<double>(value_); }
    bool is_string() const { return std::holds_alternative<std::string>(value_); }
    bool is_array() const { return std::holds_alternative<Array>(value_); }
    bool is_object() const { return std::holds_alternative<Object>(value_); }

    // Typed access; throws Error when the type differs.
    bool as_bool() const;
    double as_number() const;
    int64_t as_int() const;  // a number that must be an integer
    const std::string& as_string() const;
    const Array& as_array() const;
    Array& as_array();
    const Object& as_object() const;

    // Object access. operator[] inserts (turning null into an object); at() throws naming the key.
    Json& operator[](const std::string& key);
    const Json& at(const std::string& key) const;
    bool contains(const std::string& key) const;
    // Array append (turning null into an array).
    void push_back(Json v);
    size_t size() const;

    // Compact text (one line), or indented by `indent` spaces when indent > 0.
    std::string dump(int indent = 0) const;

private:
    void dump_to(std::string& out, int indent, int depth) const;
    std::variant<std::nullptr_t, bool, double, std::string, Array, Object> value_ = nullptr;
};

}  // namespace sinklab
