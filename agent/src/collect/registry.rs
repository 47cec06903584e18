//! The registry built from the one list of collector families
//! (`with_families!` in the parent module). Adding a collector is one file
//! (its family: settings, collectors, snapshot part, metrics) plus one line
//! in that list. From the list come the flattened
//! config sections ([`Sections`]), the `collectors.<name>` schedules
//! ([`Schedules`]), the collectors to run, the `--once` delta list and the
//! metric declarations. The order of the list is the order of the
//! sections in `--print-config` and of the schedules.

use std::any::Any;
use std::collections::BTreeMap;

use lull_common::metric::Metric;
use serde::{Deserialize, Serialize};

use super::*;
use crate::schedule::Schedule;

macro_rules! registry {
    ($($field:ident: $family:ty),* $(,)?) => {
        /// Every family's config sections, flattened into the top level of
        /// the agent's configuration.
        #[derive(Debug, Clone, Default, Serialize, Deserialize)]
        #[serde(default)]
        pub struct Sections {
            $(
                #[doc = concat!("The `", stringify!($field), "` family's sections.")]
                #[serde(flatten)]
                pub $field: <$family as Family>::Settings,
            )*
        }

        impl Sections {
            /// Checks every family's rules.
            pub fn check(&self) -> Result<(), String> {
                $( <$family as Family>::check(&self.$field)?; )*
                Ok(())
            }

            fn ctx(&self) -> Ctx<'_> {
                Ctx(vec![$( &self.$field as &dyn Any ),*])
            }

            /// Every family's collectors that have something to do.
            pub fn build(&self) -> Vec<Box<dyn Collector>> {
                let ctx = self.ctx();
                let mut out = Vec::new();
                $( out.extend(<$family as Family>::build(&self.$field, &ctx)); )*
                out
            }
        }

        /// Every collector's name and default schedule, in registry order.
        pub fn default_schedules() -> Vec<(&'static str, Schedule)> {
            let mut out = Vec::new();
            $( out.extend_from_slice(<$family as Family>::SCHEDULES); )*
            out
        }

        /// Collectors whose figures are deltas (`--once` runs them twice).
        pub fn delta_collectors() -> Vec<&'static str> {
            let mut out = Vec::new();
            $( out.extend_from_slice(<$family as Family>::DELTA); )*
            out
        }

        /// Every family's metric declarations.
        pub fn metrics() -> Vec<&'static [&'static Metric]> {
            vec![$( <$family as Family>::METRICS ),*]
        }
    };
}

with_families!(registry);

/// The `collectors` table: every collector's schedule, in registry order.
/// Missing names keep their defaults; unknown names are ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedules(Vec<(&'static str, Schedule)>);

impl Default for Schedules {
    fn default() -> Self {
        Schedules(default_schedules())
    }
}

impl Schedules {
    /// The schedule of `name`.
    pub fn get(&self, name: &str) -> Option<Schedule> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    }

    /// The schedule of `name`, to change it.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Schedule> {
        self.0.iter_mut().find(|(n, _)| *n == name).map(|(_, s)| s)
    }

    /// Every collector's name and schedule.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Schedule)> + '_ {
        self.0.iter().copied()
    }
}

impl Serialize for Schedules {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (name, sched) in &self.0 {
            m.serialize_entry(name, sched)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Schedules {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut given = BTreeMap::<String, Schedule>::deserialize(d)?;
        Ok(Schedules(
            default_schedules()
                .into_iter()
                .map(|(name, s)| (name, given.remove(name).unwrap_or(s)))
                .collect(),
        ))
    }
}
