//! The `registry!` macro: a closed enum of named hooks with `ALL`, `name` and `from_name`, so
//! a report can list every hook (the ones that never fired included) and a scenario file or a
//! command line can name one.

/// Declares a registry enum. Each variant carries its kebab-case name and a probability in
/// parts per million (its meaning is the registry's: unused by canaries and probes).
#[macro_export]
macro_rules! registry {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[doc = $doc:literal])* $variant:ident = ($label:literal, $ppm:expr) ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name {
            $( $(#[doc = $doc])* $variant ),*
        }

        impl $name {
            /// Every member, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The name scenario files, command lines and reports use.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $label),*
                }
            }

            /// The member named `name`.
            pub fn from_name(name: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|x| x.name() == name)
            }

            /// The member's one-paragraph description (its doc comment).
            pub const fn doc(self) -> &'static str {
                match self {
                    $($name::$variant => concat!($($doc),*)),*
                }
            }

            /// Position in `ALL`.
            pub const fn index(self) -> usize {
                self as usize
            }

            #[allow(dead_code)]
            pub(crate) const fn ppm(self) -> u32 {
                match self {
                    $($name::$variant => $ppm),*
                }
            }
        }
    };
}
