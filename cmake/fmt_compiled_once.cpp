// fmt's compiled part, for builds that take fmt from the build machine's headers
// (SINKLAB_HOST_HEADER_DEPS, the aarch64 cross build: see CMakeLists.txt).
//
// The target root has no libfmt to link against. Defining FMT_HEADER_ONLY instead would compile
// fmt's implementation (fmt/format-inl.h) into every file that prints, which costs the aarch64
// cross compiler about 6 s per file at -O3, some 40 files: half of the cross build. Here it is
// compiled once: format-inl.h defines the non-template functions that fmt/core.h and fmt/format.h
// declare, and the templates they declare without a definition are instantiated below, for char,
// the only character type sinklab formats. Written against fmt 9 (FMT_VERSION 90100, Debian 12);
// CMakeLists.txt falls back to FMT_HEADER_ONLY for other versions.
#include <fmt/format-inl.h>

FMT_BEGIN_NAMESPACE
namespace detail {
// The shortest round-trip decimal of a float or double (the {} of a floating-point value).
template FMT_API auto dragonbox::to_decimal(float x) noexcept -> dragonbox::decimal_fp<float>;
template FMT_API auto dragonbox::to_decimal(double x) noexcept -> dragonbox::decimal_fp<double>;
// Locale-dependent formatting ({:L}): the locale reference and its separators.
template FMT_API locale_ref::locale_ref(const std::locale& loc);
template FMT_API auto locale_ref::get<std::locale>() const -> std::locale;
template FMT_API auto thousands_sep_impl(locale_ref) -> thousands_sep_result<char>;
template FMT_API auto decimal_point_impl(locale_ref) -> char;
// Appending to the output buffer, and the formatting loop itself.
template FMT_API void buffer<char>::append(const char*, const char*);
template FMT_API void vformat_to(buffer<char>&, string_view, basic_format_args<FMT_BUFFER_CONTEXT(char)>,
                                 locale_ref);
}  // namespace detail
FMT_END_NAMESPACE
