# Finds the ONNX Runtime C/C++ headers an op library needs (API 21 or newer).
# Order: -DORT_INCLUDE_DIR / $ORT_INCLUDE_DIR, a system install, then Debian's
# libonnxruntime-dev 1.21 (trixie) downloaded into the build tree with apt-get
# and private state folders (no root, the system's apt setup untouched).

set(HASTE_ORT_DEB_SUITE "trixie" CACHE STRING "Debian suite to fetch libonnxruntime-dev from")

function(_haste_has_headers dir out)
  if(EXISTS "${dir}/onnxruntime_c_api.h" AND EXISTS "${dir}/onnxruntime_cxx_api.h")
    set(${out} TRUE PARENT_SCOPE)
  else()
    set(${out} FALSE PARENT_SCOPE)
  endif()
endfunction()

function(_haste_fetch_deb_headers out_dir)
  set(root "${CMAKE_BINARY_DIR}/_ort_headers")
  set(include_dir "${root}/extract/usr/include/onnxruntime")
  _haste_has_headers("${include_dir}" ok)
  if(ok)
    set(${out_dir} "${include_dir}" PARENT_SCOPE)
    return()
  endif()
  find_program(APT_GET apt-get)
  find_program(DPKG_DEB dpkg-deb)
  if(NOT APT_GET OR NOT DPKG_DEB)
    return()
  endif()
  # The mirror is the one this machine's apt already uses.
  execute_process(COMMAND ${APT_GET} indextargets --format "$(URI)" OUTPUT_VARIABLE uris ERROR_QUIET)
  string(REGEX MATCH "(https?://[^ \n]+)/dists/" _ "${uris}")
  set(mirror "${CMAKE_MATCH_1}")
  if(NOT mirror)
    set(mirror "http://deb.debian.org/debian")
  endif()
  file(MAKE_DIRECTORY "${root}/lists/partial" "${root}/cache/archives/partial" "${root}/etc" "${root}/debs")
  file(WRITE "${root}/etc/sources.list" "deb ${mirror} ${HASTE_ORT_DEB_SUITE} main\n")
  file(WRITE "${root}/status" "")
  set(apt_opts
    -o "Dir::Etc::sourcelist=${root}/etc/sources.list" -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=${root}/lists" -o "Dir::Cache=${root}/cache" -o "Dir::State::status=${root}/status"
    -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1")
  message(STATUS "haste-onnx: fetching libonnxruntime-dev from ${mirror} ${HASTE_ORT_DEB_SUITE}")
  execute_process(COMMAND ${APT_GET} -q ${apt_opts} update RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(WARNING "apt-get update for libonnxruntime-dev failed: ${err}")
    return()
  endif()
  execute_process(COMMAND ${APT_GET} -q ${apt_opts} download libonnxruntime-dev
    WORKING_DIRECTORY "${root}/debs" RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
  file(GLOB debs "${root}/debs/libonnxruntime-dev_*.deb")
  if(NOT rc EQUAL 0 OR NOT debs)
    message(WARNING "apt-get download libonnxruntime-dev failed: ${err}")
    return()
  endif()
  list(GET debs 0 deb)
  execute_process(COMMAND ${DPKG_DEB} -x "${deb}" "${root}/extract" RESULT_VARIABLE rc)
  _haste_has_headers("${include_dir}" ok)
  if(rc EQUAL 0 AND ok)
    set(${out_dir} "${include_dir}" PARENT_SCOPE)
  endif()
endfunction()

function(haste_find_ort_headers out_var)
  if(NOT ORT_INCLUDE_DIR AND DEFINED ENV{ORT_INCLUDE_DIR})
    set(ORT_INCLUDE_DIR "$ENV{ORT_INCLUDE_DIR}")
  endif()
  if(ORT_INCLUDE_DIR)
    _haste_has_headers("${ORT_INCLUDE_DIR}" ok)
    if(NOT ok)
      message(FATAL_ERROR "ORT_INCLUDE_DIR=${ORT_INCLUDE_DIR} has no onnxruntime_c_api.h and onnxruntime_cxx_api.h")
    endif()
    set(${out_var} "${ORT_INCLUDE_DIR}" PARENT_SCOPE)
    return()
  endif()
  find_path(ORT_SYSTEM_INCLUDE onnxruntime_cxx_api.h PATH_SUFFIXES onnxruntime onnxruntime/core/session)
  if(ORT_SYSTEM_INCLUDE)
    set(${out_var} "${ORT_SYSTEM_INCLUDE}" PARENT_SCOPE)
    return()
  endif()
  _haste_fetch_deb_headers(fetched)
  if(fetched)
    set(${out_var} "${fetched}" PARENT_SCOPE)
    return()
  endif()
  message(FATAL_ERROR
    "haste-onnx needs the ONNX Runtime C/C++ headers (API 21 or newer) and found none. Provide them in one of "
    "these ways: set ORT_INCLUDE_DIR to a folder with onnxruntime_c_api.h and onnxruntime_cxx_api.h (for example "
    "the include/ folder of an onnxruntime release); install Debian's libonnxruntime-dev; or allow this build to "
    "run 'apt-get download libonnxruntime-dev' (Debian ${HASTE_ORT_DEB_SUITE}), which needs apt-get, dpkg-deb and "
    "access to a Debian mirror.")
endfunction()
