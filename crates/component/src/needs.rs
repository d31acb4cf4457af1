//! What one instance of a component takes from the host: core instances, memories and
//! tables, read from the bytes before anything is compiled.
//!
//! A pooling host reserves fixed slots per component instance, so these numbers decide
//! which of its pools can hold the component, and they let the host refuse one that fits
//! none with the limit it exceeds rather than a failed instantiation later. A Rust
//! strategy needs a handful of each; a componentize-py build links libc, the Python
//! interpreter and its adapters as separate core modules and needs more than a dozen core
//! instances.

use serde::Serialize;
use wasmparser::{
    ComponentAlias, ComponentExternalKind, ComponentInstance, ComponentOuterAliasKind, Instance,
    Parser, Payload,
};

/// Resources one instance of a component uses, as wasmtime's pooling allocator counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ComponentNeeds {
    /// Core module instantiations.
    pub core_instances: usize,
    /// Memories defined by the instantiated modules (imported ones are shared, not new).
    pub memories: usize,
    /// Tables defined by the instantiated modules.
    pub tables: usize,
    /// The largest initial size of any defined memory, in bytes: a component whose memory
    /// starts above the strategy's memory limit cannot be instantiated at all.
    pub initial_memory_bytes: u64,
}

impl ComponentNeeds {
    fn add(&mut self, other: &ComponentNeeds) {
        self.core_instances += other.core_instances;
        self.memories += other.memories;
        self.tables += other.tables;
        self.initial_memory_bytes = self.initial_memory_bytes.max(other.initial_memory_bytes);
    }
}

/// One module's definitions (an instantiation adds one core instance on top).
#[derive(Default, Clone, Copy)]
struct ModuleDefs {
    memories: usize,
    tables: usize,
    initial_memory_bytes: u64,
}

/// A component being read: its module and component index spaces and what its own
/// instantiations need.
#[derive(Default)]
struct ComponentFrame {
    modules: Vec<ModuleDefs>,
    components: Vec<ComponentNeeds>,
    needs: ComponentNeeds,
}

enum Frame {
    Module(ModuleDefs),
    Component(ComponentFrame),
}

/// Counts what one instance of the component in `bytes` needs. The bytes must already have
/// passed validation; an index this walk cannot resolve (a module or component reached
/// through an alias) counts as an instantiation that defines nothing, so the result is a
/// lower bound there and exact for what `wit-component` and componentize-py produce.
pub fn component_needs(bytes: &[u8]) -> Result<ComponentNeeds, wasmparser::BinaryReaderError> {
    let mut stack = vec![Frame::Component(ComponentFrame::default())];
    for payload in Parser::new(0).parse_all(bytes) {
        match payload? {
            Payload::ModuleSection { .. } => stack.push(Frame::Module(ModuleDefs::default())),
            Payload::ComponentSection { .. } => {
                stack.push(Frame::Component(ComponentFrame::default()))
            }
            Payload::MemorySection(reader) => {
                if let Some(Frame::Module(m)) = stack.last_mut() {
                    for memory in reader {
                        let memory = memory?;
                        m.memories += 1;
                        let page = memory.page_size_log2.map_or(65_536, |log2| 1u64 << log2);
                        m.initial_memory_bytes = m
                            .initial_memory_bytes
                            .max(memory.initial.saturating_mul(page));
                    }
                }
            }
            Payload::TableSection(reader) => {
                if let Some(Frame::Module(m)) = stack.last_mut() {
                    m.tables += reader.count() as usize;
                }
            }
            Payload::InstanceSection(reader) => {
                if let Some(Frame::Component(c)) = stack.last_mut() {
                    for instance in reader {
                        if let Instance::Instantiate { module_index, .. } = instance? {
                            let defs = c
                                .modules
                                .get(module_index as usize)
                                .copied()
                                .unwrap_or_default();
                            c.needs.add(&ComponentNeeds {
                                core_instances: 1,
                                memories: defs.memories,
                                tables: defs.tables,
                                initial_memory_bytes: defs.initial_memory_bytes,
                            });
                        }
                    }
                }
            }
            Payload::ComponentInstanceSection(reader) => {
                if let Some(Frame::Component(c)) = stack.last_mut() {
                    for instance in reader {
                        if let ComponentInstance::Instantiate {
                            component_index, ..
                        } = instance?
                        {
                            let inner = c
                                .components
                                .get(component_index as usize)
                                .copied()
                                .unwrap_or_default();
                            c.needs.add(&inner);
                        }
                    }
                }
            }
            Payload::ComponentAliasSection(reader) => {
                // Aliases add to the module and component index spaces; keep the indices
                // of the ones defined here right by holding a place for each.
                if let Some(Frame::Component(c)) = stack.last_mut() {
                    for alias in reader {
                        match alias? {
                            ComponentAlias::Outer {
                                kind: ComponentOuterAliasKind::CoreModule,
                                ..
                            }
                            | ComponentAlias::InstanceExport {
                                kind: ComponentExternalKind::Module,
                                ..
                            } => c.modules.push(ModuleDefs::default()),
                            ComponentAlias::Outer {
                                kind: ComponentOuterAliasKind::Component,
                                ..
                            }
                            | ComponentAlias::InstanceExport {
                                kind: ComponentExternalKind::Component,
                                ..
                            } => c.components.push(ComponentNeeds::default()),
                            _ => {}
                        }
                    }
                }
            }
            Payload::End(_) => {
                let done = stack.pop();
                match (done, stack.last_mut()) {
                    (Some(Frame::Module(m)), Some(Frame::Component(parent))) => {
                        parent.modules.push(m)
                    }
                    (Some(Frame::Component(c)), Some(Frame::Component(parent))) => {
                        parent.components.push(c.needs)
                    }
                    (Some(Frame::Component(c)), None) => return Ok(c.needs),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    Ok(ComponentNeeds::default())
}
