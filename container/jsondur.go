package container

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"time"
)

// A person reads /info: every time.Duration in it, in the contract's
// options or anywhere in a component's EffectiveConfig, is shown as a Go
// duration string ("5s", "1m30s") rather than encoding/json's nanoseconds.
// humanDurations rewrites a value for the encoder so that no component
// needs a Duration type of its own; everything else keeps encoding/json's
// rules (field names and order, omitempty, "-", embedded structs,
// MarshalJSON and MarshalText methods).

var (
	durationType    = reflect.TypeFor[time.Duration]()
	marshalerType   = reflect.TypeFor[json.Marshaler]()
	textMarshalType = reflect.TypeFor[encoding.TextMarshaler]()
)

// humanDurations returns v with every time.Duration replaced by its
// String form. Values whose type holds no Duration are returned as they
// are.
func humanDurations(v any) any {
	if v == nil {
		return nil
	}
	return humanValue(reflect.ValueOf(v), 0)
}

// maxHumanDepth bounds the rewrite: a value deeper than this (a pointer
// cycle) is left to encoding/json, which reports the cycle as an error
// instead of the rewrite overflowing the stack.
const maxHumanDepth = 100

func humanValue(v reflect.Value, depth int) any {
	if !v.IsValid() {
		return nil
	}
	if depth > maxHumanDepth {
		return v.Interface()
	}
	depth++
	t := v.Type()
	if t == durationType {
		return time.Duration(v.Int()).String()
	}
	if customMarshal(t) {
		return v.Interface()
	}
	if v.CanAddr() && customMarshal(reflect.PointerTo(t)) {
		return v.Addr().Interface()
	}
	if t.Kind() != reflect.Interface && !holdsDuration(t) {
		return v.Interface()
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return humanValue(v.Elem(), depth)
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && v.IsNil() {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = humanValue(v.Index(i), depth)
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		// Same key type, so the encoder keeps its rules for keys.
		out := reflect.MakeMapWithSize(reflect.MapOf(t.Key(), reflect.TypeFor[any]()), v.Len())
		for it := v.MapRange(); it.Next(); {
			val := humanValue(it.Value(), depth)
			rv := reflect.New(reflect.TypeFor[any]()).Elem()
			if val != nil {
				rv.Set(reflect.ValueOf(val))
			}
			out.SetMapIndex(it.Key(), rv)
		}
		return out.Interface()
	case reflect.Struct:
		var obj object
		addFields(&obj, v, depth)
		return obj
	}
	return v.Interface()
}

func customMarshal(t reflect.Type) bool {
	return t.Implements(marshalerType) || t.Implements(textMarshalType)
}

// jsonField is one field encoding/json would write, found at depth
// (embedding level) under name.
type jsonField struct {
	name   string
	depth  int
	tagged bool
	opts   string
	typ    reflect.Type
	v      reflect.Value
}

// collectFields lists v's fields in encoding/json's order: an untagged
// embedded struct's fields take its place.
func collectFields(v reflect.Value, depth int, out []jsonField) []jsonField {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		fv := v.Field(i)
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if fv.Kind() == reflect.Pointer {
					if fv.IsNil() {
						continue
					}
					fv = fv.Elem()
				}
				out = collectFields(fv, depth+1, out)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		tagged := name != ""
		if !tagged {
			name = f.Name
		}
		out = append(out, jsonField{name: name, depth: depth, tagged: tagged, opts: opts, typ: f.Type, v: fv})
	}
	return out
}

// addFields appends v's fields to obj under encoding/json's rules: of the
// fields sharing a name the shallowest wins (then the tagged one); a tie
// leaves the name out.
func addFields(obj *object, v reflect.Value, depth int) {
	all := collectFields(v, 0, nil)
	byName := map[string][]int{}
	for i, f := range all {
		byName[f.name] = append(byName[f.name], i)
	}
	for i, f := range all {
		dominant := true
		for _, j := range byName[f.name] {
			g := all[j]
			if j != i && (g.depth < f.depth || g.depth == f.depth && (g.tagged || !f.tagged)) {
				dominant = false
			}
		}
		if !dominant {
			continue
		}
		omit := false
		for _, o := range strings.Split(f.opts, ",") {
			if o == "omitempty" && isEmpty(f.v) || o == "omitzero" && f.v.IsZero() {
				omit = true
			}
		}
		if omit {
			continue
		}
		if hasOpt(f.opts, "string") && !holdsDuration(f.typ) {
			// ",string" is the encoder's own business.
			obj.fields = append(obj.fields, field{f.name, stringOpt{f.v.Interface()}})
			continue
		}
		obj.fields = append(obj.fields, field{f.name, humanValue(f.v, depth)})
	}
}

func hasOpt(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// isEmpty is encoding/json's omitempty test.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

var holdsCache sync.Map // reflect.Type -> bool

// holdsDuration reports whether a value of type t can contain a
// time.Duration that encoding/json would write (interfaces: maybe).
func holdsDuration(t reflect.Type) bool {
	if b, ok := holdsCache.Load(t); ok {
		return b.(bool)
	}
	b := holds(t, map[reflect.Type]bool{})
	holdsCache.Store(t, b)
	return b
}

func holds(t reflect.Type, visiting map[reflect.Type]bool) bool {
	if t == durationType {
		return true
	}
	if customMarshal(t) || visiting[t] {
		return false
	}
	visiting[t] = true
	defer delete(visiting, t)
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		return holds(t.Elem(), visiting)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if (f.IsExported() || f.Anonymous) && f.Tag.Get("json") != "-" && holds(f.Type, visiting) {
				return true
			}
		}
	}
	return false
}

// object is a JSON object whose keys keep the order they were added in.
type object struct{ fields []field }

type field struct {
	name  string
	value any
}

func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o.fields {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.name)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(f.value)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// stringOpt encodes a field tagged ",string" as encoding/json does, by
// letting it encode a one-field struct with that tag.
type stringOpt struct{ v any }

func (s stringOpt) MarshalJSON() ([]byte, error) {
	rv := reflect.ValueOf(s.v)
	st := reflect.StructOf([]reflect.StructField{{Name: "V", Type: rv.Type(), Tag: `json:"v,string"`}})
	sv := reflect.New(st).Elem()
	sv.Field(0).Set(rv)
	b, err := json.Marshal(sv.Interface())
	if err != nil {
		return nil, err
	}
	// {"v":...}
	return b[len(`{"v":`) : len(b)-1], nil
}
