//! Images: references, the registry client, the content store, layer
//! unpack, image config, save/load. Knows nothing of namespaces.

pub mod archive;
pub mod auth;
pub mod compression;
pub mod digest;
pub mod manifest;
pub mod progress;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;
