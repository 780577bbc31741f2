package plan

func (b *tbuild) rust() error {
	return noTemplate("the Rust template is not written yet")
}
