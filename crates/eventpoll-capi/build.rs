//! Build script of libeventpoll: gives the shared library its SONAME, `libeventpoll.so`, so
//! that programs linked with it record that name (and find it through their run path, which
//! the installed pkg-config file sets, or through the system's library directories).

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libeventpoll.so");
    println!("cargo:rerun-if-changed=build.rs");
}
