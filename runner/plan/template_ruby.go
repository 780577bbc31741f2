package plan

func (b *tbuild) ruby() error {
	return noTemplate("the Ruby template is not written yet")
}
