// Package domain holds slipway's nouns — Model, Version, Alias, Lineage,
// Token — their validation rules, and the five domain errors every other
// package wraps. It imports the standard library only.
package domain
