#include "io/safetensors.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "util/error.h"
#include "util/fileio.h"

namespace sinklab {

const char* dtype_name(TensorDtype dtype) {
    switch (dtype) {
        case TensorDtype::f32: return "F32";
        case TensorDtype::f16: return "F16";
        case TensorDtype::bf16: return "BF16";
    }
    return "?";
}

size_t dtype_bytes(TensorDtype dtype) { return dtype == TensorDtype::f32 ? 4 : 2; }

float f16_to_f32(uint16_t bits) {
    // sign 1, exponent 5 (bias 15), mantissa 10
    const uint32_t sign = uint32_t(bits >> 15) << 31;
    const uint32_t exponent = (bits >> 10) & 0x1F;
    const uint32_t mantissa = bits & 0x3FF;
    uint32_t out;
    if (exponent == 0x1F) {
        out = sign | 0x7F800000u | (mantissa << 13);  // infinity or NaN (payload kept)
    } else if (exponent != 0) {
        out = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        out = sign;  // +-0
    } else {
        // subnormal: mantissa x 2^-24, exactly representable as a normal float32
        const float magnitude = std::ldexp(float(mantissa), -24);
        std::memcpy(&out, &magnitude, 4);
        out |= sign;
    }
    float f;
    std::memcpy(&f, &out, 4);
    return f;
}

float bf16_to_f32(uint16_t bits) {
    const uint32_t out = uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &out, 4);
    return f;
}

namespace {

bool parse_dtype(const std::string& name, TensorDtype& dtype) {
    if (name == "F32") dtype = TensorDtype::f32;
    else if (name == "F16") dtype = TensorDtype::f16;
    else if (name == "BF16") dtype = TensorDtype::bf16;
    else return false;
    return true;
}

bool is_size(const Json& v) {
    return v.is_number() && v.as_number() >= 0 && v.as_number() == std::floor(v.as_number()) && v.as_number() < 9.0e15;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path), metadata_(Json::object()) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("{}: cannot open ({})", path, std::strerror(errno));
    std::error_code ec;
    const uint64_t file_size = std::filesystem::file_size(path, ec);
    if (ec) fail("{}: cannot read its size ({})", path, ec.message());
    unsigned char length_bytes[8];
    if (file_size < 8 || !in.read(reinterpret_cast<char*>(length_bytes), 8))
        fail("{}: not a safetensors file: shorter than its 8-byte header length", path);
    uint64_t header_len = 0;
    for (int i = 0; i < 8; i++) header_len |= uint64_t(length_bytes[i]) << (8 * i);
    if (header_len > file_size - 8 || header_len > (uint64_t(1) << 30))
        fail("{}: not a safetensors file or truncated: header length {} but the file has {} bytes", path, header_len,
             file_size);
    std::string header_text(header_len, '\0');
    if (!in.read(header_text.data(), std::streamsize(header_len))) fail("{}: read error in the header", path);
    const Json header = Json::parse(header_text, path + " (safetensors header)");
    if (!header.is_object()) fail("{}: safetensors header is not a JSON object", path);
    data_start_ = 8 + header_len;
    const uint64_t data_size = file_size - data_start_;
    for (const auto& [name, t] : header.as_object()) {
        if (name == "__metadata__") {
            if (!t.is_object()) fail("{}: \"__metadata__\" is not a JSON object", path);
            metadata_ = t;
            continue;
        }
        auto require = [&](const char* key, bool ok, const char* what) {
            if (!ok) fail("{}: tensor '{}': \"{}\" is not {} (a corrupt header?)", path, name, key, what);
        };
        require("dtype", t.is_object() && t.contains("dtype") && t.at("dtype").is_string(), "a string");
        require("shape", t.contains("shape") && t.at("shape").is_array(), "a list");
        require("data_offsets", t.contains("data_offsets") && t.at("data_offsets").is_array() &&
                                    t.at("data_offsets").size() == 2 && is_size(t.at("data_offsets").as_array()[0]) &&
                                    is_size(t.at("data_offsets").as_array()[1]),
                "a list of two offsets");
        SafetensorsEntry e;
        e.name = name;
        if (!parse_dtype(t.at("dtype").as_string(), e.dtype))
            fail("{}: tensor '{}' has dtype {}: only F32, F16 and BF16 are read", path, name, t.at("dtype").as_string());
        double numel = 1;
        for (const Json& d : t.at("shape").as_array()) {
            require("shape", is_size(d), "a list of sizes");
            e.shape.push_back(size_t(d.as_int()));
            numel *= d.as_number();
        }
        e.begin = uint64_t(t.at("data_offsets").as_array()[0].as_int());
        e.end = uint64_t(t.at("data_offsets").as_array()[1].as_int());
        if (e.end < e.begin || e.end > data_size || double(e.end - e.begin) != numel * double(dtype_bytes(e.dtype)))
            fail("{}: tensor '{}': data_offsets [{}, {}) do not fit its shape and dtype or the file (truncated?)", path,
                 name, e.begin, e.end);
        e.numel = size_t(numel);
        entries_.emplace(name, std::move(e));
    }
}

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
    const auto it = entries_.find(name);
    if (it == entries_.end()) fail("{}: tensor '{}' is missing", path_, name);
    return it->second;
}

void SafetensorsFile::read_f32(const std::string& name, float* out) const {
    const SafetensorsEntry& e = entry(name);
    std::ifstream in(path_, std::ios::binary);
    if (!in) fail("{}: cannot open ({})", path_, std::strerror(errno));
    in.seekg(std::streamoff(data_start_ + e.begin));
    if (e.dtype == TensorDtype::f32) {  // little-endian float32 on x86-64 and ARM64: read in place
        if (!in.read(reinterpret_cast<char*>(out), std::streamsize(e.numel * 4)))
            fail("{}: tensor '{}': read error (truncated?)", path_, name);
        return;
    }
    // 16-bit values, converted in chunks
    constexpr size_t chunk = size_t(1) << 20;
    std::vector<uint16_t> buffer(std::min(chunk, e.numel));
    for (size_t done = 0; done < e.numel;) {
        const size_t n = std::min(chunk, e.numel - done);
        if (!in.read(reinterpret_cast<char*>(buffer.data()), std::streamsize(n * 2)))
            fail("{}: tensor '{}': read error (truncated?)", path_, name);
        for (size_t i = 0; i < n; i++)
            out[done + i] = e.dtype == TensorDtype::f16 ? f16_to_f32(buffer[i]) : bf16_to_f32(buffer[i]);
        done += n;
    }
}

std::string safetensors_header_f32(const std::vector<TensorToWrite>& tensors, const Json& metadata) {
    Json header = Json::object();
    if (!metadata.is_null()) header["__metadata__"] = metadata;
    size_t offset = 0;
    for (const TensorToWrite& t : tensors) {
        size_t numel = 1;
        for (size_t s : t.shape) numel *= s;
        Json entry = Json::object();
        entry["dtype"] = "F32";
        entry["shape"] = Json(t.shape);
        entry["data_offsets"] = Json(std::vector<size_t>{offset * 4, (offset + numel) * 4});
        header[t.name] = entry;
        offset += numel;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
    return text;
}

void write_safetensors_f32(const std::string& path, const std::vector<TensorToWrite>& tensors, const Json& metadata) {
    const std::string header = safetensors_header_f32(tensors, metadata);
    write_file_atomic(path, [&](const auto& write) {
        unsigned char length[8];
        for (int i = 0; i < 8; i++) length[i] = static_cast<unsigned char>((uint64_t(header.size()) >> (8 * i)) & 0xFF);
        write(length, 8);
        write(header.data(), header.size());
        for (const TensorToWrite& t : tensors) {
            size_t numel = 1;
            for (size_t s : t.shape) numel *= s;
            write(t.data, numel * sizeof(float));
        }
    });
}

}  // namespace sinklab
